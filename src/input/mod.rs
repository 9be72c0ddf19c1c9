//! Batch input: the files `transfer --batch` reads, each record parsed into
//! a transfer at the edge and numbered by the line it starts on, so that
//! results and errors name the line a person sees in an editor.

pub(crate) mod csv;
pub(crate) mod jsonl;

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use crate::error::{Result, WalletError};
use crate::money::{Amount, Currencies, CurrencyId};
use crate::text::shown_path;

/// A batch file opened to read, or standard input for `-`.
pub(crate) struct BatchInput {
    pub reader: Box<dyn BufRead>,
    /// The input as errors name it: `'payroll.jsonl'` or `standard input`.
    pub source: String,
}

impl BatchInput {
    pub(crate) fn open(file: &Path) -> Result<Self> {
        if file.as_os_str() == "-" {
            return Ok(Self {
                reader: Box::new(io::stdin().lock()),
                source: "standard input".to_string(),
            });
        }
        let opened = File::open(file).map_err(|e| {
            WalletError::Io(
                anyhow::Error::new(e).context(format!("cannot read '{}'", file.display())),
            )
        })?;
        Ok(Self {
            reader: Box::new(BufReader::with_capacity(256 * 1024, opened)),
            source: format!("'{}'", shown_path(file)),
        })
    }
}

/// A line's amount read at the scale of the currency it names (by code,
/// any case), or of the ledger's default when it names none.
fn amount_in(
    currencies: &Currencies,
    code: Option<&str>,
    amount: &str,
) -> Result<(CurrencyId, Amount)> {
    match code {
        Some(code) => {
            let (id, currency) = currencies.by_code(code)?;
            Ok((id, currency.parse_amount(amount)?))
        }
        None => Ok((
            CurrencyId::DEFAULT,
            currencies.default_currency().parse_amount(amount)?,
        )),
    }
}

fn read_error(e: io::Error, source: &str) -> WalletError {
    WalletError::Io(anyhow::Error::new(e).context(format!("cannot read {source}")))
}
