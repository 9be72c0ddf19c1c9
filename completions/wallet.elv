
use builtin;
use str;

set edit:completion:arg-completer[wallet] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'wallet'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'wallet'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand init 'Create an empty ledger'
            cand currency 'Add a currency to the ledger: `currency add CODE --scale N`'
            cand currencies 'List the ledger''s currencies, the default first'
            cand create-user 'Add a user with a zero balance'
            cand get-user 'Show a user''s balance and pending totals, now or at a point of the past'
            cand deposit 'Queue money coming in to a user from outside the ledger'
            cand withdraw 'Queue money going out of a user to outside the ledger'
            cand transfer 'Queue a transfer between two users, or many from a JSON Lines file'
            cand exchange 'Queue an exchange: two transfers in two currencies, decided as one'
            cand settle 'Apply pending transfers, oldest first'
            cand get-transfer 'Show one transfer'
            cand history 'List a user''s transfers, newest first'
            cand cancel 'Cancel a transfer that is still PENDING'
            cand users 'List the users with their balances, a page at a time'
            cand balances 'A trial balance: every account''s balance, which sum to zero'
            cand export 'Stream every transfer as JSON Lines, CSV or an hledger journal'
            cand events 'Print the change feed as JSON Lines: holds, decisions, policy changes'
            cand hold 'Reserve money for a later transfer: a hold, captured or released later'
            cand capture 'Turn a live hold into a PENDING transfer of all of it or part'
            cand release 'Void a live hold: its money is available again'
            cand refund 'Queue a refund of a COMPLETED transfer, all of it or part'
            cand overdraft 'Set a user''s overdraft limit: how far below zero its balance may go'
            cand freeze 'Freeze a user: no money leaves the account until it is unfrozen'
            cand unfreeze 'Unfreeze a user: money may leave the account again'
            cand close 'Close a user for good: only an empty account, never reopened'
            cand completions 'Print a shell completion script'
            cand verify 'Check every ledger invariant and report each check'
            cand migrate 'Upgrade the ledger''s schema to the version this binary writes'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wallet;init'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --currency 'Currency code shown with every amount'
            cand --scale 'Decimal places of the currency'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;currency'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand add 'Add a currency with its scale; the same code and scale again replays'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wallet;currency;add'= {
            cand --scale 'Decimal places of the currency'
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;currency;help'= {
            cand add 'Add a currency with its scale; the same code and scale again replays'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wallet;currency;help;add'= {
        }
        &'wallet;currency;help;help'= {
        }
        &'wallet;currencies'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;create-user'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --overdraft 'How far below zero the balance may go, e.g. 500.00 (0: none)'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;get-user'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --at 'The balance at this instant: RFC 3339, or a date (the end of that day, UTC)'
            cand --at-tx 'The balance right after this transfer was applied to the user, in its currency unless --currency names one'
            cand --currency 'Show this currency''s figures at the top level (default: the ledger''s default currency)'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;deposit'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --currency 'The currency of the amount, by code (default: the ledger''s default currency)'
            cand --id 'Idempotency key: a retry with the same key and fields returns the first transfer'
            cand --memo 'A note stored with the transfer'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;withdraw'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --currency 'The currency of the amount, by code (default: the ledger''s default currency)'
            cand --id 'Idempotency key: a retry with the same key and fields returns the first transfer'
            cand --memo 'A note stored with the transfer'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;transfer'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --currency 'The currency of the amount, by code (default: the ledger''s default currency)'
            cand --id 'Idempotency key: a retry with the same key and fields returns the first transfer'
            cand --memo 'A note stored with the transfer'
            cand --batch 'Queue every transfer in FILE (`-` for stdin), one JSON object per line'
            cand --chunk-size 'With --batch: lines per transaction, default 100000 (ignored with --atomic)'
            cand --format 'With --batch: the input''s format, JSON Lines or CSV with a header row (src,dst,amount and optionally id,memo,currency)'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand --atomic 'With --batch: queue all lines or, if any line fails, none'
            cand --dry-run 'With --batch: check every line against the ledger and print what would be queued, writing nothing (a later real run may take other tx_ids)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;exchange'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --for 'What the desk pays back: AMOUNT CODE, in another currency'
            cand --via 'The user that provides the liquidity: it receives the first amount and pays the second'
            cand --id 'Idempotency key: a retry with the same key and fields returns the first transfer'
            cand --memo 'A note stored with the transfer'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;settle'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --limit 'Settle at most N transfers (N + 1 when the cap falls between an exchange''s two legs, which settle together)'
            cand --batch-size 'Transfers applied per transaction [default: 200000 on a ledger file, 1000 on PostgreSQL]'
            cand --interval 'With --watch: how long to sleep when the queue is empty'
            cand --workers 'Settle with N workers, each on its own connection (PostgreSQL; a ledger file uses one)'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand --watch 'Keep running: settle transfers as they are queued, until SIGINT or SIGTERM'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;get-transfer'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --id 'Look the transfer up by its idempotency key instead'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;history'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --limit 'Show at most N transfers'
            cand --status 'Only transfers with this status'
            cand --before 'Only transfers older than this id (the last tx_id of the previous page)'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;cancel'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;users'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --limit 'Show at most N users'
            cand --after 'Only users whose name comes after NAME (the last name of the previous page)'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;balances'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --at 'The balances at this instant: RFC 3339, or a date (the end of that day, UTC)'
            cand --currency 'Show this currency''s book at the top level, and only its table (default: every currency, the default at the top level)'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;export'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --format 'The format to write'
            cand --since 'Only transfers created at or after TIME (RFC 3339, or a date: its start, UTC)'
            cand --until 'Only transfers created at or before TIME (RFC 3339, or a date: its end, UTC)'
            cand --status 'Only transfers with this status (repeat for several)'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;events'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --after 'Only the events after this cursor (the \"cursor\" of an event printed before)'
            cand --limit 'Print at most N events, then exit'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand --follow 'Keep running: print new events as they commit, until SIGINT or SIGTERM'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;hold'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --expires-in 'Expire this long after it is placed: 90s, 30m, 12h, 7d'
            cand --expires-at 'Expire at this instant (RFC 3339, or a date: the end of that day, UTC)'
            cand --currency 'The currency of the amount, by code (default: the ledger''s default currency)'
            cand --id 'Idempotency key: a retry with the same key and fields returns the first transfer'
            cand --memo 'A note stored with the transfer'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;capture'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;release'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;refund'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --id 'Idempotency key: a retry with the same key and fields returns the first transfer'
            cand --memo 'A note stored with the transfer'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;overdraft'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --currency 'The currency of the limit, by code (default: the ledger''s default currency)'
            cand --memo 'A note recorded with the change'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;freeze'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --memo 'A note recorded with the change'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;unfreeze'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --memo 'A note recorded with the change'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;close'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --memo 'A note recorded with the change'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;completions'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;verify'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --expect-head 'Fail unless the hash chain still extends this head (a hash printed by --head earlier): nothing sealed before it was rewritten'
            cand --record-head 'Once every check passes, append the chain''s head to FILE as one JSON line (created if missing); nothing when nothing is sealed yet or FILE ends with this head already'
            cand --heads 'Fail unless the hash chain still extends every head recorded in FILE (lines --record-head wrote, or bare hashes --head printed)'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand --head 'Print the hash chain''s head (its hash and position) after checking it'
            cand --quick 'Check the file''s pages with SQLite''s quick_check instead of the full integrity_check (which also compares every index with its table)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;migrate'= {
            cand --db 'The ledger: a file path, or a postgres:// URL (?schema=NAME picks the ledger, default wallet)'
            cand --lock-timeout 'How long to wait for another process''s lock before failing with `busy`'
            cand --json 'Print machine-readable JSON on stdout (errors as JSON on stderr)'
            cand -q 'Print nothing on success but the data asked for'
            cand --quiet 'Print nothing on success but the data asked for'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wallet;help'= {
            cand init 'Create an empty ledger'
            cand currency 'Add a currency to the ledger: `currency add CODE --scale N`'
            cand currencies 'List the ledger''s currencies, the default first'
            cand create-user 'Add a user with a zero balance'
            cand get-user 'Show a user''s balance and pending totals, now or at a point of the past'
            cand deposit 'Queue money coming in to a user from outside the ledger'
            cand withdraw 'Queue money going out of a user to outside the ledger'
            cand transfer 'Queue a transfer between two users, or many from a JSON Lines file'
            cand exchange 'Queue an exchange: two transfers in two currencies, decided as one'
            cand settle 'Apply pending transfers, oldest first'
            cand get-transfer 'Show one transfer'
            cand history 'List a user''s transfers, newest first'
            cand cancel 'Cancel a transfer that is still PENDING'
            cand users 'List the users with their balances, a page at a time'
            cand balances 'A trial balance: every account''s balance, which sum to zero'
            cand export 'Stream every transfer as JSON Lines, CSV or an hledger journal'
            cand events 'Print the change feed as JSON Lines: holds, decisions, policy changes'
            cand hold 'Reserve money for a later transfer: a hold, captured or released later'
            cand capture 'Turn a live hold into a PENDING transfer of all of it or part'
            cand release 'Void a live hold: its money is available again'
            cand refund 'Queue a refund of a COMPLETED transfer, all of it or part'
            cand overdraft 'Set a user''s overdraft limit: how far below zero its balance may go'
            cand freeze 'Freeze a user: no money leaves the account until it is unfrozen'
            cand unfreeze 'Unfreeze a user: money may leave the account again'
            cand close 'Close a user for good: only an empty account, never reopened'
            cand completions 'Print a shell completion script'
            cand verify 'Check every ledger invariant and report each check'
            cand migrate 'Upgrade the ledger''s schema to the version this binary writes'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wallet;help;init'= {
        }
        &'wallet;help;currency'= {
            cand add 'Add a currency with its scale; the same code and scale again replays'
        }
        &'wallet;help;currency;add'= {
        }
        &'wallet;help;currencies'= {
        }
        &'wallet;help;create-user'= {
        }
        &'wallet;help;get-user'= {
        }
        &'wallet;help;deposit'= {
        }
        &'wallet;help;withdraw'= {
        }
        &'wallet;help;transfer'= {
        }
        &'wallet;help;exchange'= {
        }
        &'wallet;help;settle'= {
        }
        &'wallet;help;get-transfer'= {
        }
        &'wallet;help;history'= {
        }
        &'wallet;help;cancel'= {
        }
        &'wallet;help;users'= {
        }
        &'wallet;help;balances'= {
        }
        &'wallet;help;export'= {
        }
        &'wallet;help;events'= {
        }
        &'wallet;help;hold'= {
        }
        &'wallet;help;capture'= {
        }
        &'wallet;help;release'= {
        }
        &'wallet;help;refund'= {
        }
        &'wallet;help;overdraft'= {
        }
        &'wallet;help;freeze'= {
        }
        &'wallet;help;unfreeze'= {
        }
        &'wallet;help;close'= {
        }
        &'wallet;help;completions'= {
        }
        &'wallet;help;verify'= {
        }
        &'wallet;help;migrate'= {
        }
        &'wallet;help;help'= {
        }
    ]
    $completions[$command]
}
