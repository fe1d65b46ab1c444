//! Links the release `tandem` binary with its code in the order of `link-order.txt`: the
//! functions a running `tandem serve` executes, packed together, so the code pages it touches
//! (the kernel maps 64 KiB around each first touch) are few (ADR 29). Only where the linker is
//! LLD (Rust's default on x86_64 Linux); a symbol the build no longer has is skipped.

fn main() {
    println!("cargo:rerun-if-changed=link-order.txt");
    println!("cargo:rerun-if-env-changed=TANDEM_NO_LINK_ORDER");
    #[allow(clippy::disallowed_methods)] // a build script reads cargo's variables
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let lld_by_default = var("TARGET") == "x86_64-unknown-linux-gnu";
    if var("PROFILE") != "release" || !lld_by_default || !var("TANDEM_NO_LINK_ORDER").is_empty() {
        return;
    }
    let order = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("link-order.txt");
    if order.is_file() {
        println!(
            "cargo:rustc-link-arg-bin=tandem=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bin=tandem=-Wl,--no-warn-symbol-ordering");
    }
}
