//! Tells the image's build script where the linker script is
//! (`DEP_PLATFORM_LINK_SCRIPT`): only a binary's own build script can pass
//! link arguments for it.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:link_script={dir}/link.ld");
    println!("cargo:rerun-if-changed=link.ld");
}
