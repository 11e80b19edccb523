//! The agent daemon and the relay role: the libp2p mesh, the action
//! journal, the module runtime and the modules.
//!
//! Not built yet: the module and mesh issues fill this crate in. It exists
//! now so that the workspace layout and the dependency direction
//! (`proto` <- `keys` <- `node`) are fixed from the start.
