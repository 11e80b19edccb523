//! netstat
