//! Embeds the configuration named by `MIG_NODE_CONFIG` at build time, so
//! `mig-node` with no arguments runs with it (MIG built its settings into
//! the agent the same way). Without the variable the embedded default is
//! empty and `mig-node` asks for `--config` or flags.

fn main() {
    println!("cargo:rerun-if-env-changed=MIG_NODE_CONFIG");
    let out_dir = std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into());
    let target = std::path::Path::new(&out_dir).join("embedded-config.toml");
    let contents = match std::env::var("MIG_NODE_CONFIG") {
        Ok(path) if !path.is_empty() => {
            println!("cargo:rerun-if-changed={path}");
            match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(error) => {
                    println!("cargo:warning=MIG_NODE_CONFIG={path}: {error}");
                    std::process::exit(1);
                }
            }
        }
        _ => String::new(),
    };
    if let Err(error) = std::fs::write(&target, contents) {
        println!("cargo:warning=cannot write {}: {error}", target.display());
        std::process::exit(1);
    }
}
