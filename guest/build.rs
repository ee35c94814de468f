//! Links the guest with the platform's linker script when building for Xen.

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "none" {
        // Set by the platform crate's build script (`links = "platform"`).
        let script = std::env::var("DEP_PLATFORM_LINK_SCRIPT")
            .expect("the platform crate exports its linker script");
        println!("cargo:rustc-link-arg-bins=-T{script}");
        println!("cargo:rustc-link-arg-bins=--no-pie");
        // File offsets need only be congruent to addresses modulo the
        // segments' alignment; with 4096 every segment began on a page of
        // the file (up to 4 KiB of padding each, issue 17's size goal).
        // Xen's libelf copies each PT_LOAD from wherever it sits in the
        // file, and link.ld still page-aligns the addresses.
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=16");
    }
}
