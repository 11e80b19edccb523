//! agentinfo
