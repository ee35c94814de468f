fn main() {
    // `--cfg loom` selects the loom model of the revoke race (src/protocol.rs).
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
