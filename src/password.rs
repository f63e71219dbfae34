//! Keystore passwords: from a file, an environment variable, or an interactive prompt. Never
//! from the command line (argv is visible to every user of the host), never logged.

use std::{io::IsTerminal, path::PathBuf};

use anyhow::Context;
use clap::Args;
use zeroize::Zeroizing;

/// Environment variable holding a keystore password (for automation).
pub(crate) const PASSWORD_ENV: &str = "WAKUFLEET_PASSWORD";

/// Where a password comes from.
#[derive(Debug, Clone, Args)]
pub(crate) struct PasswordArgs {
    /// Read the keystore password from the first line of this file. Otherwise it is taken from
    /// $WAKUFLEET_PASSWORD, or asked for on the terminal.
    #[arg(long, value_name = "FILE", global = true)]
    password_file: Option<PathBuf>,
}

impl PasswordArgs {
    /// These arguments, with `file` as the password file when none was given.
    pub(crate) fn or_file(self, file: Option<PathBuf>) -> Self {
        Self { password_file: self.password_file.or(file) }
    }

    /// The password for an existing keystore.
    pub(crate) fn read(&self, what: &str) -> anyhow::Result<Zeroizing<String>> {
        self.obtain(what, false)
    }

    /// A new password, asked twice when typed.
    pub(crate) fn read_new(&self, what: &str) -> anyhow::Result<Zeroizing<String>> {
        self.obtain(what, true)
    }

    fn obtain(&self, what: &str, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
        if let Some(path) = &self.password_file {
            return node::keystore::read_password_file(path)
                .with_context(|| format!("password file {}", path.display()));
        }
        if let Ok(password) = std::env::var(PASSWORD_ENV) {
            return Ok(Zeroizing::new(password));
        }
        if !std::io::stdin().is_terminal() {
            anyhow::bail!(
                "no password for {what}: pass --password-file FILE, set {PASSWORD_ENV}, or run in a terminal"
            );
        }
        let password = Zeroizing::new(
            rpassword::prompt_password(format!("Password for {what}: "))
                .context("reading the password")?,
        );
        if confirm {
            let again = Zeroizing::new(
                rpassword::prompt_password("Repeat the password: ")
                    .context("reading the password")?,
            );
            if *again != *password {
                anyhow::bail!("the passwords do not match");
            }
        }
        Ok(password)
    }
}
