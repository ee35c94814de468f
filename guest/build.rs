//! Links the guest with the platform's linker script when building for Xen.

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "none" {
        // Set by the platform crate's build script (`links = "platform"`).
        let script = std::env::var("DEP_PLATFORM_LINK_SCRIPT")
            .expect("the platform crate exports its linker script");
        println!("cargo:rustc-link-arg-bins=-T{script}");
        println!("cargo:rustc-link-arg-bins=--no-pie");
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
    }
}
