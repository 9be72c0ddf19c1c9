//! A primary and a streaming standby for the failover tests, started by the
//! tests from the same binaries as [`super::pgserver`], each on a unix
//! socket of its own in one temporary directory. The standby is a
//! `pg_basebackup -R` copy of the primary, streaming from it; with
//! [`Replication::Synchronous`] the primary waits for the standby's flush
//! before it acknowledges a commit (`synchronous_standby_names = '*'`,
//! `synchronous_commit = on`), and both servers keep `fsync` on, so that
//! an acknowledged commit is on the disks of both.
//!
//! The servers carry the parent-death signal of [`super::pgserver`]: they
//! stop when the thread that started the cluster ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::pgserver::{as_server_user, binaries, is_root, missing, remove_stale};

/// How the primary treats its standby.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Replication {
    /// A commit is acknowledged once the standby has flushed it.
    Synchronous,
    /// A commit is acknowledged once the primary has flushed it; the
    /// standby follows when it can.
    Asynchronous,
}

/// One server of the cluster.
struct Node {
    /// Its socket directory; its data directory is `data` inside.
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// A primary and its standby.
pub(crate) struct PgCluster {
    bin: PathBuf,
    root: PathBuf,
    primary: Node,
    standby: Node,
    /// The System V segment of a server killed with SIGKILL, which only a
    /// clean stop removes.
    orphaned_segments: Vec<String>,
}

static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl PgCluster {
    /// `initdb`, the primary started, the standby copied from it with
    /// `pg_basebackup -R` and started, and (when synchronous) the primary
    /// told to wait for it once it streams. The standby's own settings
    /// name no synchronous standby: once promoted, with the old primary
    /// gone, it must accept commits alone.
    pub(crate) fn start(replication: Replication) -> Self {
        let Some(bin) = binaries() else {
            missing("no PostgreSQL server binaries found");
        };
        remove_stale();
        // The name `remove_stale` knows, so that a killed test's cluster
        // is removed by the next run.
        let root = std::env::temp_dir().join(format!(
            "wallet-pgserver-{}-cluster{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let primary = Node {
            dir: root.join("p"),
            child: None,
        };
        let standby = Node {
            dir: root.join("s"),
            child: None,
        };
        for dir in [&root, &primary.dir, &standby.dir] {
            std::fs::create_dir_all(dir).unwrap();
            if is_root() {
                let status = Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(dir)
                    .status()
                    .unwrap();
                assert!(status.success(), "chown of {}", dir.display());
            }
        }
        let mut cluster = Self {
            bin,
            root,
            primary,
            standby,
            orphaned_segments: Vec::new(),
        };
        let out = as_server_user(&cluster.bin.join("initdb"))
            .arg("-D")
            .arg(cluster.primary.data())
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8"])
            .output()
            .unwrap();
        if !out.status.success() {
            missing(&format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        cluster.run(true);
        let out = as_server_user(&cluster.bin.join("pg_basebackup"))
            .arg("-D")
            .arg(cluster.standby.data())
            .arg("-h")
            .arg(&cluster.primary.dir)
            .args(["-U", "postgres", "-R", "-X", "stream", "-c", "fast"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_basebackup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.run(false);
        cluster
            .wait_for_primary("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'");
        if replication == Replication::Synchronous {
            let mut client = cluster.connect_to(true, "postgres");
            // One statement a call: ALTER SYSTEM runs outside any transaction.
            for sql in [
                "ALTER SYSTEM SET synchronous_standby_names = '*'",
                "SELECT pg_reload_conf()",
            ] {
                client.batch_execute(sql).unwrap();
            }
            cluster.wait_for_primary(
                "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'",
            );
        }
        cluster
    }

    /// Starts one node's server on its data directory and waits until it
    /// answers.
    fn run(&mut self, primary: bool) {
        let bin = self.bin.clone();
        let node = if primary {
            &mut self.primary
        } else {
            &mut self.standby
        };
        let log = std::fs::File::create(node.dir.join("log")).unwrap();
        let child = as_server_user(&bin.join("postgres"))
            .arg("-D")
            .arg(node.data())
            .arg("-k")
            .arg(&node.dir)
            .args([
                "-c",
                "listen_addresses=",
                "-c",
                "max_connections=100",
                "-c",
                "shared_buffers=32MB",
                "-c",
                "fsync=on",
                "-c",
                "synchronous_commit=on",
                // Segments in the data directory, removed with it even when
                // the server is killed.
                "-c",
                "dynamic_shared_memory_type=mmap",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        node.child = Some(child);
        let started = Instant::now();
        while !self.answers(primary) {
            if started.elapsed() > Duration::from_secs(60) {
                let node = if primary {
                    &self.primary
                } else {
                    &self.standby
                };
                missing(&format!("a server did not start: {}", node.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn answers(&self, primary: bool) -> bool {
        let node = if primary {
            &self.primary
        } else {
            &self.standby
        };
        Command::new(self.bin.join("pg_isready"))
            .arg("-q")
            .arg("-h")
            .arg(&node.dir)
            .arg("-U")
            .arg("postgres")
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Waits until `count` (a query on the primary) is at least one.
    fn wait_for_primary(&self, count: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut client = self.connect_to(true, "postgres");
        while client.query_one(count, &[]).unwrap().get::<_, i64>(0) < 1 {
            assert!(
                Instant::now() < deadline,
                "the standby did not catch up ({count}); its log: {}",
                self.standby.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The URL naming both servers, primary first, that connects to
    /// whichever accepts writes (`target_session_attrs=read-write`): the
    /// form an operator gives `wallet` in front of a failover.
    pub(crate) fn url(&self, database: &str, schema: &str) -> String {
        format!(
            "postgresql://postgres@{},{}/{database}?target_session_attrs=read-write&schema={schema}",
            encoded(&self.primary.dir),
            encoded(&self.standby.dir)
        )
    }

    /// A URL naming the standby alone, as a reader that wants it (and
    /// never the primary) gives it.
    pub(crate) fn standby_url(&self, database: &str, schema: &str) -> String {
        format!(
            "postgresql://postgres@{}/{database}?schema={schema}",
            encoded(&self.standby.dir)
        )
    }

    /// A direct connection to the primary (`true`) or the standby, as
    /// another program would make.
    pub(crate) fn connect_to(&self, primary: bool, database: &str) -> postgres::Client {
        let node = if primary {
            &self.primary
        } else {
            &self.standby
        };
        postgres::Config::new()
            .host_path(&node.dir)
            .user("postgres")
            .dbname(database)
            .connect(postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", node.dir.display()))
    }

    /// Runs SQL on the primary as the superuser, panicking on failure.
    pub(crate) fn psql_primary(&self, database: &str, sql: &str) {
        self.connect_to(true, database)
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    /// Kills the primary as a lost machine would go: SIGKILL to the
    /// postmaster and to every backend, walsender and helper it started.
    /// Each child leads a session of its own, so a process group does not
    /// reach them: the postmaster is stopped first, so that it forks no
    /// child while they are listed, then all are killed at once.
    pub(crate) fn kill_primary(&mut self) {
        let Some(pid) = self.primary.pid() else {
            return;
        };
        if let Some(segment) = std::fs::read_to_string(self.primary.data().join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().nth(6).map(str::to_string))
            .and_then(|line| line.split_whitespace().nth(1).map(str::to_string))
        {
            self.orphaned_segments.push(segment);
        }
        signal("STOP", &[pid]);
        let mut victims = children_of(pid);
        // The checkpointer, WAL writer, walsender and the rest at least.
        assert!(victims.len() >= 4, "the primary's processes: {victims:?}");
        victims.push(pid);
        signal("KILL", &victims);
        let _ = self.primary.child.take().map(|mut child| child.wait());
        // Children reparented to init are reaped there; wait until gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        while victims
            .iter()
            .any(|p| Path::new("/proc").join(p.to_string()).join("exe").exists())
        {
            assert!(Instant::now() < deadline, "the primary's processes live on");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Promotes the standby (`pg_ctl promote`, which waits for the end of
    /// recovery) and waits until it takes a write.
    pub(crate) fn promote_standby(&self) {
        let out = as_server_user(&self.bin.join("pg_ctl"))
            .arg("promote")
            .arg("-D")
            .arg(self.standby.data())
            .args(["-w", "-t", "60"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl promote: {}{}; the standby's log: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.standby.log()
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut client = self.connect_to(false, "postgres");
        while client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .unwrap()
            .get::<_, bool>(0)
        {
            assert!(Instant::now() < deadline, "the standby was not promoted");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The standby's WAL receiver process.
    fn wal_receiver(&self) -> u32 {
        let pid: i32 = self
            .connect_to(false, "postgres")
            .query_one("SELECT pid FROM pg_stat_wal_receiver", &[])
            .expect("the standby has a WAL receiver")
            .get(0);
        u32::try_from(pid).unwrap()
    }

    /// Freezes the standby's WAL receiver (SIGSTOP): the primary's WAL
    /// stops reaching the standby, though both still run.
    pub(crate) fn stop_wal_receiver(&self) -> u32 {
        let pid = self.wal_receiver();
        signal("STOP", &[pid]);
        pid
    }

    /// Lets a frozen WAL receiver run again (SIGCONT).
    pub(crate) fn continue_wal_receiver(&self, pid: u32) {
        signal("CONT", &[pid]);
    }

    /// The WAL position up to which the primary has written, and the one up
    /// to which it has sent WAL to the standby (none once the standby is
    /// no longer connected).
    pub(crate) fn primary_wal(&self) -> (i64, Option<i64>) {
        let row = self
            .connect_to(true, "postgres")
            .query_one(
                "SELECT (pg_current_wal_lsn() - '0/0')::bigint,
                        (SELECT max(sent_lsn - '0/0')::bigint FROM pg_stat_replication)",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        for node in [&mut self.standby, &mut self.primary] {
            if let Some(mut child) = node.child.take() {
                // A frozen WAL receiver would hold up the stop.
                let _ = Command::new("kill")
                    .args(["-QUIT", &child.id().to_string()])
                    .status();
                let _ = child.wait();
            }
        }
        for segment in &self.orphaned_segments {
            let _ = Command::new("ipcrm")
                .args(["-m", segment])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A socket directory as a URL's host: every byte but the unreserved
/// ones percent-encoded, `/` included.
fn encoded(dir: &Path) -> String {
    dir.to_str()
        .expect("a UTF-8 temp dir")
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Sends a signal; a process that exited on its own in the meantime is not
/// a failure.
fn signal(name: &str, pids: &[u32]) {
    Command::new("kill")
        .arg(format!("-{name}"))
        .args(pids.iter().map(u32::to_string))
        .stderr(Stdio::null())
        .status()
        .expect("run kill");
}

/// The processes whose parent is `pid`, from `/proc`.
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let child: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // The command name may hold spaces and parentheses; the fields
            // after its last ')' are fixed: state, then the parent's pid.
            let rest = &stat[stat.rfind(')')? + 1..];
            let parent: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (parent == pid).then_some(child)
        })
        .collect()
}
