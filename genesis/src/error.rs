//! Errors from loading, validating and saving a genesis file.

use std::{fmt, path::PathBuf};

/// One problem in a genesis file, located by its JSON path (e.g. `app_state.balances[1].address`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// JSON path from the document root; `.` is the root itself.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl Issue {
    /// An issue at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a genesis file could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// The file could not be read.
    #[error("cannot read genesis file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file could not be written.
    #[error("cannot write genesis file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The document is not valid JSON or does not have the genesis shape (wrong type, unknown or missing field).
    /// Parsing stops at the first such problem.
    #[error("invalid genesis JSON at {}: {} (line {line}, column {column})", .issue.path, .issue.message)]
    Parse {
        /// Where and what.
        issue: Issue,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
    },
    /// The document parsed but breaks one or more rules; every problem found is listed.
    #[error("invalid genesis ({} problem{}):\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, IssueList(.0))]
    Invalid(Vec<Issue>),
    /// Serialising the genesis failed (should not happen for a value of this type).
    #[error("cannot serialise genesis: {0}")]
    Serialize(#[source] serde_json::Error),
}

impl GenesisError {
    /// Every located problem this error carries: the parse problem, or all validation problems.
    pub fn issues(&self) -> &[Issue] {
        match self {
            Self::Parse { issue, .. } => std::slice::from_ref(issue),
            Self::Invalid(issues) => issues,
            _ => &[],
        }
    }
}

struct IssueList<'a>(&'a [Issue]);

impl fmt::Display for IssueList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  {issue}")?;
        }
        Ok(())
    }
}
