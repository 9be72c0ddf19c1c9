//! From a `postgres://` URL to an open connection: the URL read the way
//! libpq reads it, the ledger's schema taken out of it, TLS through rustls.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use postgres::config::SslMode;
use postgres::{Client, Config};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::error::{PgFault, lift_connect};
use crate::error::WalletError;
use crate::location::{Location, is_malformed_password, percent_decoded};

/// The schema a ledger lives in when the URL names none.
pub(super) const DEFAULT_SCHEMA: &str = "wallet";

/// Where a PostgreSQL ledger is: how to connect, and which schema holds it.
#[derive(Clone)]
pub(crate) struct Target {
    pub config: Config,
    pub schema: String,
    /// The ledger as messages name it (its Display hides the password).
    pub shown: Location,
    /// Whether the server's certificate is checked (`verify-ca`,
    /// `verify-full`), and against which roots.
    verify: Option<Option<PathBuf>>,
}

impl Target {
    /// Reads a `postgres://` or `postgresql://` URL. The parameters the
    /// `postgres` crate does not know (`schema`, `sslrootcert`, the
    /// `verify-*` modes) are taken out first, since it refuses unknown ones;
    /// what libpq takes from the environment (`PGHOST`, `PGPORT`, `PGUSER`,
    /// `PGPASSWORD`, `PGDATABASE`) fills what the URL leaves out.
    pub(crate) fn parse(url: &str) -> Result<Self, WalletError> {
        let shown = Location::Server(url.to_string());
        let invalid = |why: String| {
            WalletError::Usage(format!("invalid PostgreSQL URL '{shown}' for --db: {why}"))
        };
        // The server reads every setting as a C string: a NUL would cut it
        // short, so the driver refuses it only when it sends it, which
        // would look like a server gone away and be retried for ever.
        if percent_decoded(url).contains('\0') {
            return Err(invalid(
                "it holds a NUL character (%00), which no connection setting can carry".into(),
            ));
        }
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (url, None),
        };
        let mut schema = None;
        let mut verify = None;
        let mut rootcert = None;
        let mut kept = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for param in query.into_iter().flat_map(|q| q.split('&')) {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            let decoded = percent_decoded(name);
            if is_malformed_password(param) {
                return Err(invalid(
                    "a password parameter is malformed (not shown); write password=VALUE, its '=' not encoded as %3D".into(),
                ));
            }
            // libpq and the driver would each take a different one of two
            // (the last, or both): the URL is ambiguous. Hosts and ports
            // are the exception: each one given is a server to try in
            // turn, as the driver has always read them.
            let listed = matches!(decoded.as_str(), "host" | "hostaddr" | "port");
            if !param.is_empty() && !listed && !seen.insert(decoded.clone()) {
                return Err(invalid(format!(
                    "the parameter '{}' is given twice; give it once",
                    crate::text::echo(&decoded)
                )));
            }
            match name {
                // libpq reads `host=a,b` (and `hostaddr`) as a list of
                // servers to try in turn; the driver would take the whole
                // value for one host's name, so each becomes its own.
                "host" | "hostaddr" if value.contains(',') => {
                    kept.extend(value.split(',').map(|one| format!("{name}={one}")))
                }
                "schema" => schema = Some(percent_decoded(value)),
                "sslrootcert" => rootcert = Some(PathBuf::from(percent_decoded(value))),
                "sslmode" if matches!(value, "verify-ca" | "verify-full") => {
                    verify = Some(());
                    kept.push("sslmode=require".to_string());
                }
                _ => kept.push(param.to_string()),
            }
        }
        let stripped = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config =
            Config::from_str(&stripped).map_err(|e| invalid(super::error::error_chain(&e)))?;
        // One port for every host, or a port each: anything else the
        // driver would refuse only as it connects, as a fault of its own.
        let (hosts, ports) = (config.get_hosts().len(), config.get_ports().len());
        if ports > 1 && ports != hosts {
            return Err(invalid(format!(
                "it gives {ports} ports for {hosts} hosts; give one port for all, or one for each host"
            )));
        }
        let schema = schema.unwrap_or_else(|| DEFAULT_SCHEMA.to_string());
        check_schema_name(&schema).map_err(|why| invalid(why.to_string()))?;
        fill_from_environment(&mut config);
        if config.get_application_name().is_none() {
            config.application_name("wallet");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        Ok(Self {
            config,
            schema,
            shown,
            verify: verify.map(|()| rootcert),
        })
    }

    /// The database the URL names, for messages.
    pub(crate) fn database(&self) -> String {
        self.config
            .get_dbname()
            .or(self.config.get_user())
            .unwrap_or("postgres")
            .to_string()
    }

    /// Connects, with `search_path` set to the ledger's schema alone (so no
    /// object elsewhere can stand in for one of ours) and the lock time-out
    /// of `--lock-timeout`.
    pub(crate) fn connect(&self, lock_timeout: Duration) -> Result<Client, PgFault> {
        let mut config = self.config.clone();
        let mut options = config.get_options().unwrap_or("").to_string();
        options.push_str(&format!(
            " -c search_path={} -c lock_timeout={}",
            self.schema,
            lock_timeout.as_millis().max(1)
        ));
        config.options(options.trim_start());
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.tls_config()?);
        config
            .connect(tls)
            .map_err(|e| lift_connect(e, &self.shown, self.database()))
    }

    fn tls_config(&self) -> Result<rustls::ClientConfig, PgFault> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| PgFault::Wallet(WalletError::internal(e)))?;
        let config = match &self.verify {
            // `sslmode=prefer` and `require`, as libpq means them: the
            // connection is encrypted, the certificate not checked.
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
                .with_no_client_auth(),
            Some(rootcert) => builder
                .with_root_certificates(roots(rootcert.as_deref())?)
                .with_no_client_auth(),
        };
        Ok(config)
    }
}

/// A schema name as the ledger's: unquoted SQL identifier characters only,
/// so it is used in SQL text without quoting and reads the same everywhere.
fn check_schema_name(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    if !first_ok
        || name.len() > 63
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        || name.starts_with("pg_")
    {
        return Err(
            "schema= must be 1–63 lower-case letters, digits or _, starting with a letter or _ and not with pg_",
        );
    }
    Ok(())
}

fn fill_from_environment(config: &mut Config) {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if config.get_hosts().is_empty() {
        let host = var("PGHOST").unwrap_or_else(|| "/var/run/postgresql".to_string());
        for host in host.split(',') {
            config.host(host);
        }
    }
    if config.get_ports().is_empty()
        && let Some(port) = var("PGPORT").and_then(|p| p.parse().ok())
    {
        config.port(port);
    }
    if config.get_user().is_none()
        && let Some(user) = var("PGUSER")
    {
        config.user(&user);
    }
    if config.get_password().is_none()
        && let Some(password) = var("PGPASSWORD")
    {
        config.password(password);
    }
    if config.get_dbname().is_none()
        && let Some(dbname) = var("PGDATABASE")
    {
        config.dbname(&dbname);
    }
    if config.get_password().is_none()
        && let Some(password) = password_from_file(config)
    {
        config.password(password);
    }
    if config.get_ssl_mode() == SslMode::Prefer
        && let Some(mode) = var("PGSSLMODE")
    {
        match mode.as_str() {
            "disable" => {
                config.ssl_mode(SslMode::Disable);
            }
            "require" => {
                config.ssl_mode(SslMode::Require);
            }
            _ => {}
        }
    }
}

/// The password libpq would take from the password file (`PGPASSFILE`, else
/// `~/.pgpass`): the first `host:port:database:user:password` line that
/// matches, `*` matching anything and `\` escaping `:` and `\`. A unix
/// socket matches `localhost` or its directory. Like libpq, a file that
/// others may read is ignored.
fn password_from_file(config: &Config) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PGPASSFILE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".pgpass")))?;
    let meta = std::fs::metadata(&path).ok()?;
    if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(dir) => dir.to_string_lossy().into_owned(),
        })
        .collect();
    let on_socket = config
        .get_hosts()
        .iter()
        .any(|host| matches!(host, postgres::config::Host::Unix(_)));
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config
        .get_user()
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_default();
    let database = config
        .get_dbname()
        .map_or_else(|| user.clone(), str::to_string);
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let fields = pgpass_fields(line);
        let [host, line_port, line_db, line_user, password] = fields.as_slice() else {
            continue;
        };
        let host_ok =
            host == "*" || hosts.iter().any(|h| h == host) || (on_socket && host == "localhost");
        let matches = |field: &str, value: &str| field == "*" || field == value;
        if host_ok
            && matches(line_port, &port)
            && matches(line_db, &database)
            && matches(line_user, &user)
        {
            return Some(password.clone());
        }
    }
    None
}

/// A password-file line split on unescaped `:`.
fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().unwrap().push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

/// The certificates a `verify-*` connection trusts: `sslrootcert`, else the
/// system's store.
fn roots(rootcert: Option<&Path>) -> Result<rustls::RootCertStore, PgFault> {
    let mut store = rustls::RootCertStore::empty();
    let io = |what: String| PgFault::Wallet(WalletError::Io(anyhow::anyhow!(what)));
    match rootcert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    io(format!(
                        "cannot read sslrootcert '{}': {e}",
                        crate::text::shown_path(path)
                    ))
                })?;
            store.add_parsable_certificates(certs);
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
        }
    }
    if store.is_empty() {
        return Err(io(
            "sslmode=verify-full found no trusted certificate (set sslrootcert= in the URL)".into(),
        ));
    }
    Ok(store)
}

/// libpq's `sslmode=require`: encrypted, the server's identity unchecked,
/// the handshake's signatures still verified.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_and_verify_modes_are_taken_out_before_parsing() {
        let target =
            Target::parse("postgres://ann:pw@db.example:6432/books?schema=team1&sslmode=verify-full&application_name=ci")
                .unwrap();
        assert_eq!(target.schema, "team1");
        assert_eq!(target.database(), "books");
        assert_eq!(target.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(target.config.get_application_name(), Some("ci"));
        assert_eq!(target.config.get_ports(), [6432]);
        assert!(!target.shown.to_string().contains("pw"));
        let default = Target::parse("postgresql:///books?host=/tmp").unwrap();
        assert_eq!(default.schema, DEFAULT_SCHEMA);
        for bad in [
            "postgres:///b?schema=Team",
            "postgres:///b?schema=pg_x",
            "postgres:///b?schema=",
        ] {
            assert_eq!(Target::parse(bad).err().unwrap().code(), "usage", "{bad}");
        }
        let message = Target::parse("postgres:///b?nonsense=1").err().unwrap();
        assert_eq!(message.code(), "usage");
        assert!(message.to_string().contains("nonsense"), "{message}");
        assert_eq!(
            pgpass_fields(r"db\:1:5432:*:ann:pa\:ss"),
            ["db:1", "5432", "*", "ann", "pa:ss"]
        );
    }
}
