//! A real PostgreSQL server for the tests, started by the tests themselves:
//! `initdb` into a temporary directory and `postgres` listening on a unix
//! socket only, run as the `postgres` user when the tests run as root.
//!
//! The server is started with a parent-death signal, so it stops when the
//! thread that started it ends: the shared one from a thread that lives as
//! long as the test process, a private one from its test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One server: its data directory and socket directory.
pub(crate) struct PgServer {
    bin: PathBuf,
    pub dir: PathBuf,
    child: Option<Child>,
    /// Whether commits reach the disk (`fsync`), as in production; the
    /// tests' servers skip it, the benchmark's does not.
    durable: bool,
}

/// The server every test on PostgreSQL shares: one database
/// (`wallet_tests`), one schema per test.
pub(crate) fn shared() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let server = PgServer::start();
            let dir = server.dir.clone();
            let bin = server.bin.clone();
            // This thread never ends while the process runs: the server's
            // parent-death signal is tied to it.
            std::mem::forget(server);
            tx.send((bin, dir)).unwrap();
            loop {
                std::thread::park();
            }
        });
        let (bin, dir) = rx.recv().expect("the PostgreSQL server started");
        let server = PgServer {
            bin,
            dir,
            child: None,
            durable: false,
        };
        server.psql("postgres", "CREATE DATABASE wallet_tests");
        server
    })
}

/// Where the server binaries are: `WALLET_TEST_PG_BIN`, else Debian's
/// newest `/usr/lib/postgresql/*/bin`, else `PATH`.
pub(crate) fn binaries() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WALLET_TEST_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("postgres").exists())
        .collect();
    versions.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(bin) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("postgres").exists() && dir.join("initdb").exists())
    })
}

/// Whether a test on PostgreSQL can run: the server binaries are there, or
/// `CI=true` (where [`shared`] then fails a test that finds none). Without
/// them each such test is skipped, with a note, leaving the rest to run.
pub(crate) fn available() -> bool {
    if binaries().is_some() || std::env::var("CI").is_ok_and(|v| v == "true") {
        return true;
    }
    eprintln!(
        "skipping a test on PostgreSQL: no server binaries found (install the `postgresql` package, or set WALLET_TEST_PG_BIN)"
    );
    false
}

/// Without a server a test cannot run: under CI that fails it, as does a
/// server whose binaries are there but which does not start (ending the
/// process would hide the results of the tests beside it); without the
/// binaries it is skipped with the reason printed, ending the test process.
pub(crate) fn missing(why: &str) -> ! {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and no PostgreSQL server could be started: {why}");
    }
    if binaries().is_some() {
        panic!("no PostgreSQL server could be started: {why}");
    }
    eprintln!(
        "skipping the PostgreSQL suite: {why} (install the `postgresql` package, or set WALLET_TEST_PG_BIN)"
    );
    std::process::exit(0);
}

pub(crate) fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// `cmd` as the user that runs the server: `postgres` when we are root
/// (the server refuses to run as root), else ourselves.
pub(crate) fn as_server_user(program: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    if is_root() {
        cmd.args([
            "--reuid",
            "postgres",
            "--regid",
            "postgres",
            "--init-groups",
        ]);
    }
    cmd.arg("--pdeathsig").arg("QUIT").arg("--").arg(program);
    cmd
}

impl PgServer {
    /// Initialises a cluster in a new directory and starts it, with
    /// `fsync` off: a crash of the server loses nothing the operating system
    /// holds, which is all the tests need.
    pub(crate) fn start() -> Self {
        Self::start_with(false)
    }

    /// A server whose commits are durable, as a production one's are (the
    /// benchmark's).
    #[allow(dead_code)]
    pub(crate) fn start_durable() -> Self {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Self {
        let Some(bin) = binaries() else {
            missing("no PostgreSQL server binaries found");
        };
        remove_stale();
        let dir = std::env::temp_dir().join(format!(
            "wallet-pgserver-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown of the server directory");
        }
        let out = as_server_user(&bin.join("initdb"))
            .args(["-D"])
            .arg(dir.join("data"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .output()
            .unwrap();
        if !out.status.success() {
            missing(&format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let mut server = Self {
            bin,
            dir,
            child: None,
            durable,
        };
        server.run();
        server
    }

    /// Starts the server on the existing cluster and waits until it answers.
    pub(crate) fn run(&mut self) {
        let log = std::fs::File::create(self.dir.join("log")).unwrap();
        let speed: &[&str] = if self.durable {
            &[]
        } else {
            &["-c", "fsync=off", "-c", "full_page_writes=off"]
        };
        let child = as_server_user(&self.bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-k")
            .arg(&self.dir)
            .args([
                "-c",
                "listen_addresses=",
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=128MB",
            ])
            .args(speed)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while !self.answers() {
            if started.elapsed() > Duration::from_secs(60) {
                let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
                missing(&format!("the server did not start: {log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m
    /// immediate`): no checkpoint, recovery at the next start.
    pub(crate) fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id();
            let _ = Command::new("kill")
                .args(["-QUIT", &pid.to_string()])
                .status();
            let _ = child.wait();
        }
    }

    fn answers(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .arg("-q")
            .arg("-h")
            .arg(&self.dir)
            .arg("-U")
            .arg("postgres")
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The `psql` beside the server.
    pub(crate) fn psql_binary(&self) -> PathBuf {
        self.bin.join("psql")
    }

    /// A `postgres://` URL for `database`, in the ledger schema `schema`.
    pub(crate) fn url(&self, database: &str, schema: &str) -> String {
        format!(
            "postgresql:///{database}?host={}&user=postgres&schema={schema}",
            self.dir.display()
        )
    }

    /// A direct connection, as another program would make.
    pub(crate) fn connect(&self, database: &str) -> postgres::Client {
        postgres::Config::new()
            .host_path(&self.dir)
            .user("postgres")
            .dbname(database)
            .connect(postgres::NoTls)
            .expect("connect to the test server")
    }

    /// Runs SQL as the superuser, panicking on failure.
    pub(crate) fn psql(&self, database: &str, sql: &str) {
        self.connect(database)
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.crash();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Directories of servers whose test process is gone.
pub(crate) fn remove_stale() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix("wallet-pgserver-"))
        else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
