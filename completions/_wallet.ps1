
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'wallet' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'wallet'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'wallet' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Create an empty ledger')
            [CompletionResult]::new('currency', 'currency', [CompletionResultType]::ParameterValue, 'Add a currency to the ledger: `currency add CODE --scale N`')
            [CompletionResult]::new('currencies', 'currencies', [CompletionResultType]::ParameterValue, 'List the ledger''s currencies, the default first')
            [CompletionResult]::new('create-user', 'create-user', [CompletionResultType]::ParameterValue, 'Add a user with a zero balance')
            [CompletionResult]::new('get-user', 'get-user', [CompletionResultType]::ParameterValue, 'Show a user''s balance and pending totals, now or at a point of the past')
            [CompletionResult]::new('deposit', 'deposit', [CompletionResultType]::ParameterValue, 'Queue money coming in to a user from outside the ledger')
            [CompletionResult]::new('withdraw', 'withdraw', [CompletionResultType]::ParameterValue, 'Queue money going out of a user to outside the ledger')
            [CompletionResult]::new('transfer', 'transfer', [CompletionResultType]::ParameterValue, 'Queue a transfer between two users, or many from a JSON Lines file')
            [CompletionResult]::new('exchange', 'exchange', [CompletionResultType]::ParameterValue, 'Queue an exchange: two transfers in two currencies, decided as one')
            [CompletionResult]::new('settle', 'settle', [CompletionResultType]::ParameterValue, 'Apply pending transfers, oldest first')
            [CompletionResult]::new('get-transfer', 'get-transfer', [CompletionResultType]::ParameterValue, 'Show one transfer')
            [CompletionResult]::new('history', 'history', [CompletionResultType]::ParameterValue, 'List a user''s transfers, newest first')
            [CompletionResult]::new('cancel', 'cancel', [CompletionResultType]::ParameterValue, 'Cancel a transfer that is still PENDING')
            [CompletionResult]::new('users', 'users', [CompletionResultType]::ParameterValue, 'List the users with their balances, a page at a time')
            [CompletionResult]::new('balances', 'balances', [CompletionResultType]::ParameterValue, 'A trial balance: every account''s balance, which sum to zero')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Stream every transfer as JSON Lines, CSV or an hledger journal')
            [CompletionResult]::new('events', 'events', [CompletionResultType]::ParameterValue, 'Print the change feed as JSON Lines: holds, decisions, policy changes')
            [CompletionResult]::new('hold', 'hold', [CompletionResultType]::ParameterValue, 'Reserve money for a later transfer: a hold, captured or released later')
            [CompletionResult]::new('capture', 'capture', [CompletionResultType]::ParameterValue, 'Turn a live hold into a PENDING transfer of all of it or part')
            [CompletionResult]::new('release', 'release', [CompletionResultType]::ParameterValue, 'Void a live hold: its money is available again')
            [CompletionResult]::new('refund', 'refund', [CompletionResultType]::ParameterValue, 'Queue a refund of a COMPLETED transfer, all of it or part')
            [CompletionResult]::new('overdraft', 'overdraft', [CompletionResultType]::ParameterValue, 'Set a user''s overdraft limit: how far below zero its balance may go')
            [CompletionResult]::new('freeze', 'freeze', [CompletionResultType]::ParameterValue, 'Freeze a user: no money leaves the account until it is unfrozen')
            [CompletionResult]::new('unfreeze', 'unfreeze', [CompletionResultType]::ParameterValue, 'Unfreeze a user: money may leave the account again')
            [CompletionResult]::new('close', 'close', [CompletionResultType]::ParameterValue, 'Close a user for good: only an empty account, never reopened')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check every ledger invariant and report each check')
            [CompletionResult]::new('migrate', 'migrate', [CompletionResultType]::ParameterValue, 'Upgrade the ledger''s schema to the version this binary writes')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wallet;init' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--currency', '--currency', [CompletionResultType]::ParameterName, 'Currency code shown with every amount')
            [CompletionResult]::new('--scale', '--scale', [CompletionResultType]::ParameterName, 'Decimal places of the currency')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;currency' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Add a currency with its scale; the same code and scale again replays')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wallet;currency;add' {
            [CompletionResult]::new('--scale', '--scale', [CompletionResultType]::ParameterName, 'Decimal places of the currency')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;currency;help' {
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Add a currency with its scale; the same code and scale again replays')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wallet;currency;help;add' {
            break
        }
        'wallet;currency;help;help' {
            break
        }
        'wallet;currencies' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;create-user' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--overdraft', '--overdraft', [CompletionResultType]::ParameterName, 'How far below zero the balance may go, e.g. 500.00 (0: none)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;get-user' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--at', '--at', [CompletionResultType]::ParameterName, 'The balance at this instant: RFC 3339, or a date (the end of that day, UTC)')
            [CompletionResult]::new('--at-tx', '--at-tx', [CompletionResultType]::ParameterName, 'The balance right after this transfer was applied to the user, in its currency unless --currency names one')
            [CompletionResult]::new('--currency', '--currency', [CompletionResultType]::ParameterName, 'Show this currency''s figures at the top level (default: the ledger''s default currency)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;deposit' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--currency', '--currency', [CompletionResultType]::ParameterName, 'The currency of the amount, by code (default: the ledger''s default currency)')
            [CompletionResult]::new('--id', '--id', [CompletionResultType]::ParameterName, 'Idempotency key: a retry with the same key and fields returns the first transfer')
            [CompletionResult]::new('--memo', '--memo', [CompletionResultType]::ParameterName, 'A note stored with the transfer')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;withdraw' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--currency', '--currency', [CompletionResultType]::ParameterName, 'The currency of the amount, by code (default: the ledger''s default currency)')
            [CompletionResult]::new('--id', '--id', [CompletionResultType]::ParameterName, 'Idempotency key: a retry with the same key and fields returns the first transfer')
            [CompletionResult]::new('--memo', '--memo', [CompletionResultType]::ParameterName, 'A note stored with the transfer')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;transfer' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--currency', '--currency', [CompletionResultType]::ParameterName, 'The currency of the amount, by code (default: the ledger''s default currency)')
            [CompletionResult]::new('--id', '--id', [CompletionResultType]::ParameterName, 'Idempotency key: a retry with the same key and fields returns the first transfer')
            [CompletionResult]::new('--memo', '--memo', [CompletionResultType]::ParameterName, 'A note stored with the transfer')
            [CompletionResult]::new('--batch', '--batch', [CompletionResultType]::ParameterName, 'Queue every transfer in FILE (`-` for stdin), one JSON object per line')
            [CompletionResult]::new('--chunk-size', '--chunk-size', [CompletionResultType]::ParameterName, 'With --batch: lines per transaction, default 100000 (ignored with --atomic)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'With --batch: the input''s format, JSON Lines or CSV with a header row (src,dst,amount and optionally id,memo,currency)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--atomic', '--atomic', [CompletionResultType]::ParameterName, 'With --batch: queue all lines or, if any line fails, none')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'With --batch: check every line against the ledger and print what would be queued, writing nothing (a later real run may take other tx_ids)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;exchange' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--for', '--for', [CompletionResultType]::ParameterName, 'What the desk pays back: AMOUNT CODE, in another currency')
            [CompletionResult]::new('--via', '--via', [CompletionResultType]::ParameterName, 'The user that provides the liquidity: it receives the first amount and pays the second')
            [CompletionResult]::new('--id', '--id', [CompletionResultType]::ParameterName, 'Idempotency key: a retry with the same key and fields returns the first transfer')
            [CompletionResult]::new('--memo', '--memo', [CompletionResultType]::ParameterName, 'A note stored with the transfer')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;settle' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Settle at most N transfers (N + 1 when the cap falls between an exchange''s two legs, which settle together)')
            [CompletionResult]::new('--batch-size', '--batch-size', [CompletionResultType]::ParameterName, 'Transfers applied per transaction [default: 200000 on a ledger file, 1000 on PostgreSQL]')
            [CompletionResult]::new('--interval', '--interval', [CompletionResultType]::ParameterName, 'With --watch: how long to sleep when the queue is empty')
            [CompletionResult]::new('--workers', '--workers', [CompletionResultType]::ParameterName, 'Settle with N workers, each on its own connection (PostgreSQL; a ledger file uses one)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Keep running: settle transfers as they are queued, until SIGINT or SIGTERM')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;get-transfer' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--id', '--id', [CompletionResultType]::ParameterName, 'Look the transfer up by its idempotency key instead')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;history' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Show at most N transfers')
            [CompletionResult]::new('--status', '--status', [CompletionResultType]::ParameterName, 'Only transfers with this status')
            [CompletionResult]::new('--before', '--before', [CompletionResultType]::ParameterName, 'Only transfers older than this id (the last tx_id of the previous page)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;cancel' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;users' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Show at most N users')
            [CompletionResult]::new('--after', '--after', [CompletionResultType]::ParameterName, 'Only users whose name comes after NAME (the last name of the previous page)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;balances' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--at', '--at', [CompletionResultType]::ParameterName, 'The balances at this instant: RFC 3339, or a date (the end of that day, UTC)')
            [CompletionResult]::new('--currency', '--currency', [CompletionResultType]::ParameterName, 'Show this currency''s book at the top level, and only its table (default: every currency, the default at the top level)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;export' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'The format to write')
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Only transfers created at or after TIME (RFC 3339, or a date: its start, UTC)')
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'Only transfers created at or before TIME (RFC 3339, or a date: its end, UTC)')
            [CompletionResult]::new('--status', '--status', [CompletionResultType]::ParameterName, 'Only transfers with this status (repeat for several)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;events' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--after', '--after', [CompletionResultType]::ParameterName, 'Only the events after this cursor (the \"cursor\" of an event printed before)')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Print at most N events, then exit')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--follow', '--follow', [CompletionResultType]::ParameterName, 'Keep running: print new events as they commit, until SIGINT or SIGTERM')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;hold' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--expires-in', '--expires-in', [CompletionResultType]::ParameterName, 'Expire this long after it is placed: 90s, 30m, 12h, 7d')
            [CompletionResult]::new('--expires-at', '--expires-at', [CompletionResultType]::ParameterName, 'Expire at this instant (RFC 3339, or a date: the end of that day, UTC)')
            [CompletionResult]::new('--currency', '--currency', [CompletionResultType]::ParameterName, 'The currency of the amount, by code (default: the ledger''s default currency)')
            [CompletionResult]::new('--id', '--id', [CompletionResultType]::ParameterName, 'Idempotency key: a retry with the same key and fields returns the first transfer')
            [CompletionResult]::new('--memo', '--memo', [CompletionResultType]::ParameterName, 'A note stored with the transfer')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;capture' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;release' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;refund' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--id', '--id', [CompletionResultType]::ParameterName, 'Idempotency key: a retry with the same key and fields returns the first transfer')
            [CompletionResult]::new('--memo', '--memo', [CompletionResultType]::ParameterName, 'A note stored with the transfer')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;overdraft' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--currency', '--currency', [CompletionResultType]::ParameterName, 'The currency of the limit, by code (default: the ledger''s default currency)')
            [CompletionResult]::new('--memo', '--memo', [CompletionResultType]::ParameterName, 'A note recorded with the change')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;freeze' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--memo', '--memo', [CompletionResultType]::ParameterName, 'A note recorded with the change')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;unfreeze' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--memo', '--memo', [CompletionResultType]::ParameterName, 'A note recorded with the change')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;close' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--memo', '--memo', [CompletionResultType]::ParameterName, 'A note recorded with the change')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;completions' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;verify' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--expect-head', '--expect-head', [CompletionResultType]::ParameterName, 'Fail unless the hash chain still extends this head (a hash printed by --head earlier): nothing sealed before it was rewritten')
            [CompletionResult]::new('--record-head', '--record-head', [CompletionResultType]::ParameterName, 'Once every check passes, append the chain''s head to FILE as one JSON line (created if missing); nothing when nothing is sealed yet or FILE ends with this head already')
            [CompletionResult]::new('--heads', '--heads', [CompletionResultType]::ParameterName, 'Fail unless the hash chain still extends every head recorded in FILE (lines --record-head wrote, or bare hashes --head printed)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--head', '--head', [CompletionResultType]::ParameterName, 'Print the hash chain''s head (its hash and position) after checking it')
            [CompletionResult]::new('--quick', '--quick', [CompletionResultType]::ParameterName, 'Check the file''s pages with SQLite''s quick_check instead of the full integrity_check (which also compares every index with its table)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;migrate' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another process''s lock before failing with `busy`')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (errors as JSON on stderr)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing on success but the data asked for')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wallet;help' {
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Create an empty ledger')
            [CompletionResult]::new('currency', 'currency', [CompletionResultType]::ParameterValue, 'Add a currency to the ledger: `currency add CODE --scale N`')
            [CompletionResult]::new('currencies', 'currencies', [CompletionResultType]::ParameterValue, 'List the ledger''s currencies, the default first')
            [CompletionResult]::new('create-user', 'create-user', [CompletionResultType]::ParameterValue, 'Add a user with a zero balance')
            [CompletionResult]::new('get-user', 'get-user', [CompletionResultType]::ParameterValue, 'Show a user''s balance and pending totals, now or at a point of the past')
            [CompletionResult]::new('deposit', 'deposit', [CompletionResultType]::ParameterValue, 'Queue money coming in to a user from outside the ledger')
            [CompletionResult]::new('withdraw', 'withdraw', [CompletionResultType]::ParameterValue, 'Queue money going out of a user to outside the ledger')
            [CompletionResult]::new('transfer', 'transfer', [CompletionResultType]::ParameterValue, 'Queue a transfer between two users, or many from a JSON Lines file')
            [CompletionResult]::new('exchange', 'exchange', [CompletionResultType]::ParameterValue, 'Queue an exchange: two transfers in two currencies, decided as one')
            [CompletionResult]::new('settle', 'settle', [CompletionResultType]::ParameterValue, 'Apply pending transfers, oldest first')
            [CompletionResult]::new('get-transfer', 'get-transfer', [CompletionResultType]::ParameterValue, 'Show one transfer')
            [CompletionResult]::new('history', 'history', [CompletionResultType]::ParameterValue, 'List a user''s transfers, newest first')
            [CompletionResult]::new('cancel', 'cancel', [CompletionResultType]::ParameterValue, 'Cancel a transfer that is still PENDING')
            [CompletionResult]::new('users', 'users', [CompletionResultType]::ParameterValue, 'List the users with their balances, a page at a time')
            [CompletionResult]::new('balances', 'balances', [CompletionResultType]::ParameterValue, 'A trial balance: every account''s balance, which sum to zero')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Stream every transfer as JSON Lines, CSV or an hledger journal')
            [CompletionResult]::new('events', 'events', [CompletionResultType]::ParameterValue, 'Print the change feed as JSON Lines: holds, decisions, policy changes')
            [CompletionResult]::new('hold', 'hold', [CompletionResultType]::ParameterValue, 'Reserve money for a later transfer: a hold, captured or released later')
            [CompletionResult]::new('capture', 'capture', [CompletionResultType]::ParameterValue, 'Turn a live hold into a PENDING transfer of all of it or part')
            [CompletionResult]::new('release', 'release', [CompletionResultType]::ParameterValue, 'Void a live hold: its money is available again')
            [CompletionResult]::new('refund', 'refund', [CompletionResultType]::ParameterValue, 'Queue a refund of a COMPLETED transfer, all of it or part')
            [CompletionResult]::new('overdraft', 'overdraft', [CompletionResultType]::ParameterValue, 'Set a user''s overdraft limit: how far below zero its balance may go')
            [CompletionResult]::new('freeze', 'freeze', [CompletionResultType]::ParameterValue, 'Freeze a user: no money leaves the account until it is unfrozen')
            [CompletionResult]::new('unfreeze', 'unfreeze', [CompletionResultType]::ParameterValue, 'Unfreeze a user: money may leave the account again')
            [CompletionResult]::new('close', 'close', [CompletionResultType]::ParameterValue, 'Close a user for good: only an empty account, never reopened')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check every ledger invariant and report each check')
            [CompletionResult]::new('migrate', 'migrate', [CompletionResultType]::ParameterValue, 'Upgrade the ledger''s schema to the version this binary writes')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wallet;help;init' {
            break
        }
        'wallet;help;currency' {
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Add a currency with its scale; the same code and scale again replays')
            break
        }
        'wallet;help;currency;add' {
            break
        }
        'wallet;help;currencies' {
            break
        }
        'wallet;help;create-user' {
            break
        }
        'wallet;help;get-user' {
            break
        }
        'wallet;help;deposit' {
            break
        }
        'wallet;help;withdraw' {
            break
        }
        'wallet;help;transfer' {
            break
        }
        'wallet;help;exchange' {
            break
        }
        'wallet;help;settle' {
            break
        }
        'wallet;help;get-transfer' {
            break
        }
        'wallet;help;history' {
            break
        }
        'wallet;help;cancel' {
            break
        }
        'wallet;help;users' {
            break
        }
        'wallet;help;balances' {
            break
        }
        'wallet;help;export' {
            break
        }
        'wallet;help;events' {
            break
        }
        'wallet;help;hold' {
            break
        }
        'wallet;help;capture' {
            break
        }
        'wallet;help;release' {
            break
        }
        'wallet;help;refund' {
            break
        }
        'wallet;help;overdraft' {
            break
        }
        'wallet;help;freeze' {
            break
        }
        'wallet;help;unfreeze' {
            break
        }
        'wallet;help;close' {
            break
        }
        'wallet;help;completions' {
            break
        }
        'wallet;help;verify' {
            break
        }
        'wallet;help;migrate' {
            break
        }
        'wallet;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
