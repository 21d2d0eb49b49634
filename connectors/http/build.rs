//! Compiles the shipped recipes (`recipes/*.toml`) into the crate, so that an instance naming
//! one (`recipe = "mattermost"`) is validated without reading a file.

use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut entries: Vec<(String, String)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let p = e.path();
            println!("cargo:rerun-if-changed={}", p.display());
            if p.extension().and_then(|x| x.to_str()) == Some("toml") {
                if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                    entries.push((stem.to_string(), p.display().to_string()));
                }
            }
        }
    }
    entries.sort();
    let mut out = String::from(
        "/// The shipped recipes: (file stem, text).\npub const RECIPES: &[(&str, &str)] = &[\n",
    );
    for (name, path) in entries {
        out.push_str(&format!("    ({name:?}, include_str!({path:?})),\n"));
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("recipes.rs");
    std::fs::write(dest, out).expect("write recipes.rs");
}
