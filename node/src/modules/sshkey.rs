//! sshkey
