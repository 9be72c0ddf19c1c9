# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_wallet_global_optspecs
    string join \n db= json q/quiet lock-timeout= h/help V/version
end

function __fish_wallet_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_wallet_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_wallet_using_subcommand
    set -l cmd (__fish_wallet_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c wallet -n "__fish_wallet_needs_command" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_needs_command" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_needs_command" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_needs_command" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_needs_command" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "init" -d 'Create an empty ledger'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "currency" -d 'Add a currency to the ledger: `currency add CODE --scale N`'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "currencies" -d 'List the ledger\'s currencies, the default first'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "create-user" -d 'Add a user with a zero balance'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "get-user" -d 'Show a user\'s balance and pending totals, now or at a point of the past'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "deposit" -d 'Queue money coming in to a user from outside the ledger'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "withdraw" -d 'Queue money going out of a user to outside the ledger'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "transfer" -d 'Queue a transfer between two users, or many from a JSON Lines file'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "exchange" -d 'Queue an exchange: two transfers in two currencies, decided as one'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "settle" -d 'Apply pending transfers, oldest first'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "get-transfer" -d 'Show one transfer'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "history" -d 'List a user\'s transfers, newest first'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "cancel" -d 'Cancel a transfer that is still PENDING'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "users" -d 'List the users with their balances, a page at a time'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "balances" -d 'A trial balance: every account\'s balance, which sum to zero'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "export" -d 'Stream every transfer as JSON Lines, CSV or an hledger journal'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "events" -d 'Print the change feed as JSON Lines: holds, decisions, policy changes'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "hold" -d 'Reserve money for a later transfer: a hold, captured or released later'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "capture" -d 'Turn a live hold into a PENDING transfer of all of it or part'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "release" -d 'Void a live hold: its money is available again'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "refund" -d 'Queue a refund of a COMPLETED transfer, all of it or part'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "overdraft" -d 'Set a user\'s overdraft limit: how far below zero its balance may go'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "freeze" -d 'Freeze a user: no money leaves the account until it is unfrozen'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "unfreeze" -d 'Unfreeze a user: money may leave the account again'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "close" -d 'Close a user for good: only an empty account, never reopened'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "verify" -d 'Check every ledger invariant and report each check'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "migrate" -d 'Upgrade the ledger\'s schema to the version this binary writes'
complete -c wallet -n "__fish_wallet_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wallet -n "__fish_wallet_using_subcommand init" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand init" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand init" -l currency -d 'Currency code shown with every amount' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand init" -l scale -d 'Decimal places of the currency' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand init" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand init" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand init" -s h -l help -d 'Print help'
complete -c wallet -n "__fish_wallet_using_subcommand init" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand currency; and not __fish_seen_subcommand_from add help" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand currency; and not __fish_seen_subcommand_from add help" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand currency; and not __fish_seen_subcommand_from add help" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand currency; and not __fish_seen_subcommand_from add help" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand currency; and not __fish_seen_subcommand_from add help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_using_subcommand currency; and not __fish_seen_subcommand_from add help" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand currency; and not __fish_seen_subcommand_from add help" -f -a "add" -d 'Add a currency with its scale; the same code and scale again replays'
complete -c wallet -n "__fish_wallet_using_subcommand currency; and not __fish_seen_subcommand_from add help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wallet -n "__fish_wallet_using_subcommand currency; and __fish_seen_subcommand_from add" -l scale -d 'Decimal places of the currency' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand currency; and __fish_seen_subcommand_from add" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand currency; and __fish_seen_subcommand_from add" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand currency; and __fish_seen_subcommand_from add" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand currency; and __fish_seen_subcommand_from add" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand currency; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_using_subcommand currency; and __fish_seen_subcommand_from add" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand currency; and __fish_seen_subcommand_from help" -f -a "add" -d 'Add a currency with its scale; the same code and scale again replays'
complete -c wallet -n "__fish_wallet_using_subcommand currency; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wallet -n "__fish_wallet_using_subcommand currencies" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand currencies" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand currencies" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand currencies" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand currencies" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_using_subcommand currencies" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand create-user" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand create-user" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand create-user" -l overdraft -d 'How far below zero the balance may go, e.g. 500.00 (0: none)' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand create-user" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand create-user" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand create-user" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_using_subcommand create-user" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand get-user" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand get-user" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand get-user" -l at -d 'The balance at this instant: RFC 3339, or a date (the end of that day, UTC)' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand get-user" -l at-tx -d 'The balance right after this transfer was applied to the user, in its currency unless --currency names one' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand get-user" -l currency -d 'Show this currency\'s figures at the top level (default: the ledger\'s default currency)' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand get-user" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand get-user" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand get-user" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_using_subcommand get-user" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand deposit" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand deposit" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand deposit" -l currency -d 'The currency of the amount, by code (default: the ledger\'s default currency)' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand deposit" -l id -d 'Idempotency key: a retry with the same key and fields returns the first transfer' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand deposit" -l memo -d 'A note stored with the transfer' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand deposit" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand deposit" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand deposit" -s h -l help -d 'Print help'
complete -c wallet -n "__fish_wallet_using_subcommand deposit" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand withdraw" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand withdraw" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand withdraw" -l currency -d 'The currency of the amount, by code (default: the ledger\'s default currency)' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand withdraw" -l id -d 'Idempotency key: a retry with the same key and fields returns the first transfer' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand withdraw" -l memo -d 'A note stored with the transfer' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand withdraw" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand withdraw" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand withdraw" -s h -l help -d 'Print help'
complete -c wallet -n "__fish_wallet_using_subcommand withdraw" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand transfer" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand transfer" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand transfer" -l currency -d 'The currency of the amount, by code (default: the ledger\'s default currency)' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand transfer" -l id -d 'Idempotency key: a retry with the same key and fields returns the first transfer' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand transfer" -l memo -d 'A note stored with the transfer' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand transfer" -l batch -d 'Queue every transfer in FILE (`-` for stdin), one JSON object per line' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand transfer" -l chunk-size -d 'With --batch: lines per transaction, default 100000 (ignored with --atomic)' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand transfer" -l format -d 'With --batch: the input\'s format, JSON Lines or CSV with a header row (src,dst,amount and optionally id,memo,currency)' -r -f -a "jsonl\t''
csv\t''"
complete -c wallet -n "__fish_wallet_using_subcommand transfer" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand transfer" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand transfer" -l atomic -d 'With --batch: queue all lines or, if any line fails, none'
complete -c wallet -n "__fish_wallet_using_subcommand transfer" -l dry-run -d 'With --batch: check every line against the ledger and print what would be queued, writing nothing (a later real run may take other tx_ids)'
complete -c wallet -n "__fish_wallet_using_subcommand transfer" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_using_subcommand transfer" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand exchange" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand exchange" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand exchange" -l for -d 'What the desk pays back: AMOUNT CODE, in another currency' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand exchange" -l via -d 'The user that provides the liquidity: it receives the first amount and pays the second' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand exchange" -l id -d 'Idempotency key: a retry with the same key and fields returns the first transfer' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand exchange" -l memo -d 'A note stored with the transfer' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand exchange" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand exchange" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand exchange" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_using_subcommand exchange" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand settle" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand settle" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand settle" -l limit -d 'Settle at most N transfers (N + 1 when the cap falls between an exchange\'s two legs, which settle together)' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand settle" -l batch-size -d 'Transfers applied per transaction [default: 200000 on a ledger file, 1000 on PostgreSQL]' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand settle" -l interval -d 'With --watch: how long to sleep when the queue is empty' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand settle" -l workers -d 'Settle with N workers, each on its own connection (PostgreSQL; a ledger file uses one)' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand settle" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand settle" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand settle" -l watch -d 'Keep running: settle transfers as they are queued, until SIGINT or SIGTERM'
complete -c wallet -n "__fish_wallet_using_subcommand settle" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_using_subcommand settle" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand get-transfer" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand get-transfer" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand get-transfer" -l id -d 'Look the transfer up by its idempotency key instead' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand get-transfer" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand get-transfer" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand get-transfer" -s h -l help -d 'Print help'
complete -c wallet -n "__fish_wallet_using_subcommand get-transfer" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand history" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand history" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand history" -l limit -d 'Show at most N transfers' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand history" -l status -d 'Only transfers with this status' -r -f -a "PENDING\t''
COMPLETED\t''
FAILED\t''
CANCELLED\t''
HELD\t''
RELEASED\t''
EXPIRED\t''"
complete -c wallet -n "__fish_wallet_using_subcommand history" -l before -d 'Only transfers older than this id (the last tx_id of the previous page)' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand history" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand history" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand history" -s h -l help -d 'Print help'
complete -c wallet -n "__fish_wallet_using_subcommand history" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand cancel" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand cancel" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand cancel" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand cancel" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand cancel" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_using_subcommand cancel" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand users" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand users" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand users" -l limit -d 'Show at most N users' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand users" -l after -d 'Only users whose name comes after NAME (the last name of the previous page)' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand users" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand users" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand users" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_using_subcommand users" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand balances" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand balances" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand balances" -l at -d 'The balances at this instant: RFC 3339, or a date (the end of that day, UTC)' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand balances" -l currency -d 'Show this currency\'s book at the top level, and only its table (default: every currency, the default at the top level)' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand balances" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand balances" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand balances" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_using_subcommand balances" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand export" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand export" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand export" -l format -d 'The format to write' -r -f -a "jsonl\t''
csv\t''
hledger\t''"
complete -c wallet -n "__fish_wallet_using_subcommand export" -l since -d 'Only transfers created at or after TIME (RFC 3339, or a date: its start, UTC)' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand export" -l until -d 'Only transfers created at or before TIME (RFC 3339, or a date: its end, UTC)' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand export" -l status -d 'Only transfers with this status (repeat for several)' -r -f -a "PENDING\t''
COMPLETED\t''
FAILED\t''
CANCELLED\t''
HELD\t''
RELEASED\t''
EXPIRED\t''"
complete -c wallet -n "__fish_wallet_using_subcommand export" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand export" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand export" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_using_subcommand export" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand events" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand events" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand events" -l after -d 'Only the events after this cursor (the \\"cursor\\" of an event printed before)' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand events" -l limit -d 'Print at most N events, then exit' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand events" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand events" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand events" -l follow -d 'Keep running: print new events as they commit, until SIGINT or SIGTERM'
complete -c wallet -n "__fish_wallet_using_subcommand events" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_using_subcommand events" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand hold" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand hold" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand hold" -l expires-in -d 'Expire this long after it is placed: 90s, 30m, 12h, 7d' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand hold" -l expires-at -d 'Expire at this instant (RFC 3339, or a date: the end of that day, UTC)' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand hold" -l currency -d 'The currency of the amount, by code (default: the ledger\'s default currency)' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand hold" -l id -d 'Idempotency key: a retry with the same key and fields returns the first transfer' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand hold" -l memo -d 'A note stored with the transfer' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand hold" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand hold" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand hold" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_using_subcommand hold" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand capture" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand capture" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand capture" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand capture" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand capture" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_using_subcommand capture" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand release" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand release" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand release" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand release" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand release" -s h -l help -d 'Print help'
complete -c wallet -n "__fish_wallet_using_subcommand release" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand refund" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand refund" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand refund" -l id -d 'Idempotency key: a retry with the same key and fields returns the first transfer' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand refund" -l memo -d 'A note stored with the transfer' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand refund" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand refund" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand refund" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_using_subcommand refund" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand overdraft" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand overdraft" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand overdraft" -l currency -d 'The currency of the limit, by code (default: the ledger\'s default currency)' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand overdraft" -l memo -d 'A note recorded with the change' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand overdraft" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand overdraft" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand overdraft" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_using_subcommand overdraft" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand freeze" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand freeze" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand freeze" -l memo -d 'A note recorded with the change' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand freeze" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand freeze" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand freeze" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_using_subcommand freeze" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand unfreeze" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand unfreeze" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand unfreeze" -l memo -d 'A note recorded with the change' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand unfreeze" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand unfreeze" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand unfreeze" -s h -l help -d 'Print help'
complete -c wallet -n "__fish_wallet_using_subcommand unfreeze" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand close" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand close" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand close" -l memo -d 'A note recorded with the change' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand close" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand close" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand close" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_using_subcommand close" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand completions" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand completions" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand completions" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand completions" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_using_subcommand completions" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand verify" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand verify" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand verify" -l expect-head -d 'Fail unless the hash chain still extends this head (a hash printed by --head earlier): nothing sealed before it was rewritten' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand verify" -l record-head -d 'Once every check passes, append the chain\'s head to FILE as one JSON line (created if missing); nothing when nothing is sealed yet or FILE ends with this head already' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand verify" -l heads -d 'Fail unless the hash chain still extends every head recorded in FILE (lines --record-head wrote, or bare hashes --head printed)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand verify" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand verify" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand verify" -l head -d 'Print the hash chain\'s head (its hash and position) after checking it'
complete -c wallet -n "__fish_wallet_using_subcommand verify" -l quick -d 'Check the file\'s pages with SQLite\'s quick_check instead of the full integrity_check (which also compares every index with its table)'
complete -c wallet -n "__fish_wallet_using_subcommand verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_using_subcommand verify" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand migrate" -l db -d 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)' -r -F
complete -c wallet -n "__fish_wallet_using_subcommand migrate" -l lock-timeout -d 'How long to wait for another process\'s lock before failing with `busy`' -r -f
complete -c wallet -n "__fish_wallet_using_subcommand migrate" -l json -d 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
complete -c wallet -n "__fish_wallet_using_subcommand migrate" -s q -l quiet -d 'Print nothing on success but the data asked for'
complete -c wallet -n "__fish_wallet_using_subcommand migrate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wallet -n "__fish_wallet_using_subcommand migrate" -s V -l version -d 'Print version'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "init" -d 'Create an empty ledger'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "currency" -d 'Add a currency to the ledger: `currency add CODE --scale N`'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "currencies" -d 'List the ledger\'s currencies, the default first'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "create-user" -d 'Add a user with a zero balance'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "get-user" -d 'Show a user\'s balance and pending totals, now or at a point of the past'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "deposit" -d 'Queue money coming in to a user from outside the ledger'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "withdraw" -d 'Queue money going out of a user to outside the ledger'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "transfer" -d 'Queue a transfer between two users, or many from a JSON Lines file'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "exchange" -d 'Queue an exchange: two transfers in two currencies, decided as one'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "settle" -d 'Apply pending transfers, oldest first'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "get-transfer" -d 'Show one transfer'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "history" -d 'List a user\'s transfers, newest first'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "cancel" -d 'Cancel a transfer that is still PENDING'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "users" -d 'List the users with their balances, a page at a time'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "balances" -d 'A trial balance: every account\'s balance, which sum to zero'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "export" -d 'Stream every transfer as JSON Lines, CSV or an hledger journal'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "events" -d 'Print the change feed as JSON Lines: holds, decisions, policy changes'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "hold" -d 'Reserve money for a later transfer: a hold, captured or released later'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "capture" -d 'Turn a live hold into a PENDING transfer of all of it or part'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "release" -d 'Void a live hold: its money is available again'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "refund" -d 'Queue a refund of a COMPLETED transfer, all of it or part'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "overdraft" -d 'Set a user\'s overdraft limit: how far below zero its balance may go'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "freeze" -d 'Freeze a user: no money leaves the account until it is unfrozen'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "unfreeze" -d 'Unfreeze a user: money may leave the account again'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "close" -d 'Close a user for good: only an empty account, never reopened'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "completions" -d 'Print a shell completion script'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "verify" -d 'Check every ledger invariant and report each check'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "migrate" -d 'Upgrade the ledger\'s schema to the version this binary writes'
complete -c wallet -n "__fish_wallet_using_subcommand help; and not __fish_seen_subcommand_from init currency currencies create-user get-user deposit withdraw transfer exchange settle get-transfer history cancel users balances export events hold capture release refund overdraft freeze unfreeze close completions verify migrate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wallet -n "__fish_wallet_using_subcommand help; and __fish_seen_subcommand_from currency" -f -a "add" -d 'Add a currency with its scale; the same code and scale again replays'
