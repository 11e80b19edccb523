//! pkg
