//! An empty plugin directory path is refused up front. Its own test binary: the test changes the
//! process's working directory (where an empty path used to install and commit).

mod sitegen;

use registry_verifier::{load_plugin, names, verify_installed, Class, FileTransport, InstallOptions, Verifier};
use std::path::Path;
use std::sync::Arc;

#[test]
fn an_empty_plugin_directory_path_is_refused_before_anything_is_written() {
    let work = std::env::temp_dir().join(format!("rv-empty-dir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("cwd")).unwrap();
    let work = work.canonicalize().unwrap();
    let site = work.join("site");
    sitegen::generate(&site, 1, 1, &[]);
    let v = Verifier::new(&format!("file://{}/", site.display()), &work.join("state"), Arc::new(FileTransport))
        .with_now(names::parse_time(sitegen::NOW).unwrap());
    v.pin(&std::fs::read(site.join("root/1.root.json")).unwrap(), &[]).unwrap();
    std::env::set_current_dir(work.join("cwd")).unwrap();
    let session = v.refresh().unwrap();
    let err = session.install("plugin-00000", Path::new(""), &InstallOptions::default()).unwrap_err();
    assert_eq!(err.class, Class::Network, "{}", err);
    assert!(err.message.contains("plugin directory path is empty"), "{}", err);
    assert_eq!(std::fs::read_dir(work.join("cwd")).unwrap().count(), 0, "nothing is written to the working directory");
    for err in [
        verify_installed(Path::new(""), Some(&work.join("state"))).unwrap_err(),
        load_plugin(Path::new(""), Some(&work.join("state")), "plugin-00000").unwrap_err(),
    ] {
        assert_eq!(err.class, Class::Network, "{}", err);
        assert!(err.message.contains("plugin directory path is empty"), "{}", err);
    }
}
