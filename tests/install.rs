//! `scripts/install.sh` builds the release library and installs it with kdbprom.q, in q's QHOME
//! layout and in a prefix; the library is then loaded from where kdbprom.q looks for it (beside
//! itself: `.prom.dir,"/libkdbprom"`) into KX's libe host, and a session runs: init, a record,
//! stop with its final push to a textfile.
#![allow(unsafe_code)]

use kdbplus::api::{K, S};
use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_LOCAL, RTLD_NOW};
use std::ffi::{CStr, CString, c_char};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kdbprom-install-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn install(args: &[&str], env: &[(&str, &Path)]) -> String {
    let mut c = Command::new("bash");
    c.arg(repo().join("scripts/install.sh")).args(args).env_remove("QHOME");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("bash runs scripts/install.sh");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "scripts/install.sh {}: {text}", args.join(" "));
    text
}

/// The library kdbprom.q at `script` loads when KDBPROM_LIB is unset: `libkdbprom` beside it, to
/// which q's `2:` adds `.so`.
fn lib_beside(script: &Path) -> PathBuf {
    let q = std::fs::read_to_string(script).unwrap();
    assert!(
        q.contains(r#".prom.dir,"/libkdbprom""#),
        "kdbprom.q no longer looks for libkdbprom beside itself: update scripts/install.sh's layout and this test"
    );
    script.parent().unwrap().join("libkdbprom.so")
}

/// The few K API functions of libe a session needs, and one loaded copy of the extension.
struct Q {
    _libe: &'static Library,
    ext: Library,
    ks: extern "C" fn(*const c_char) -> K,
    kp: extern "C" fn(*const c_char) -> K,
    kj: extern "C" fn(i64) -> K,
    ka: extern "C" fn(i32) -> K,
    ktn: extern "C" fn(i32, i64) -> K,
    ss: extern "C" fn(*const c_char) -> S,
    xd: extern "C" fn(K, K) -> K,
    ee: extern "C" fn(K) -> K,
    r0: extern "C" fn(K),
}

fn libe() -> &'static Library {
    static L: std::sync::OnceLock<Library> = std::sync::OnceLock::new();
    L.get_or_init(|| {
        let p = env!("KX_LIBE_PATH");
        assert!(Path::new(p).exists(), "{p} is missing: run scripts/fetch-libe.sh (scripts/test.sh does)");
        // SAFETY: libe first and global, so the extension's undefined K symbols bind to it; never closed.
        let l = unsafe { Library::open(Some(p), RTLD_NOW | RTLD_GLOBAL).unwrap() };
        // SAFETY: setm is libe's `I setm(I)`; the flusher interns symbols from its own thread.
        unsafe { (*l.get::<extern "C" fn(i32) -> i32>(b"setm").unwrap())(1) };
        l
    })
}

impl Q {
    fn load(so: &Path) -> Q {
        let libe = libe();
        // SAFETY: the extension was built against this K API; kept loaded for the test's life.
        let ext = unsafe { Library::open(Some(so), RTLD_NOW | RTLD_LOCAL) }.unwrap_or_else(|e| panic!("dlopen {}: {e}", so.display()));
        macro_rules! f {
            ($n:literal) => {
                // SAFETY: each name is the libe function of the field's signature.
                unsafe { *libe.get($n).unwrap() }
            };
        }
        Q {
            ks: f!(b"ks"),
            kp: f!(b"kp"),
            kj: f!(b"kj"),
            ka: f!(b"ka"),
            ktn: f!(b"ktn"),
            ss: f!(b"ss"),
            xd: f!(b"xD"),
            ee: f!(b"ee"),
            r0: f!(b"r0"),
            _libe: libe,
            ext,
        }
    }

    fn s(&self, x: &str) -> K {
        (self.ks)(CString::new(x).unwrap().as_ptr())
    }

    fn str(&self, x: &str) -> K {
        (self.kp)(CString::new(x).unwrap().as_ptr())
    }

    /// `::`
    fn id(&self) -> K {
        let k = (self.ka)(101);
        // SAFETY: a fresh atom.
        unsafe { (*k).value.byte = 0 };
        k
    }

    fn dict(&self, kv: &[(&str, K)]) -> K {
        let keys = (self.ktn)(11, kv.len() as i64);
        let vals = (self.ktn)(0, kv.len() as i64);
        for (i, (k, v)) in kv.iter().enumerate() {
            // SAFETY: ktn allocated kv.len() items of each list.
            unsafe {
                *(*keys).value.list.G0.as_mut_ptr().cast::<S>().add(i) = (self.ss)(CString::new(*k).unwrap().as_ptr());
                *(*vals).value.list.G0.as_mut_ptr().cast::<K>().add(i) = *v;
            }
        }
        (self.xd)(keys, vals)
    }

    /// Calls export `name` of the installed library as q would (arguments freed afterwards):
    /// Ok(result, null for `::`) or Err(the q error).
    fn call(&self, name: &str, args: &[K]) -> Result<K, String> {
        // SAFETY: every export named here has this rank and takes and returns K.
        let r = unsafe {
            match args.len() {
                1 => (*self.ext.get::<extern "C" fn(K) -> K>(name.as_bytes()).unwrap())(args[0]),
                2 => (*self.ext.get::<extern "C" fn(K, K) -> K>(name.as_bytes()).unwrap())(args[0], args[1]),
                5 => (*self.ext.get::<extern "C" fn(K, K, K, K, K) -> K>(name.as_bytes()).unwrap())(
                    args[0], args[1], args[2], args[3], args[4],
                ),
                n => panic!("rank {n}"),
            }
        };
        for &a in args {
            (self.r0)(a);
        }
        if !r.is_null() {
            return Ok(r);
        }
        let e = (self.ee)(std::ptr::null_mut());
        // SAFETY: ee returns a -128 atom whose symbol is the pending message or null.
        let msg = unsafe { (*e).value.symbol };
        let out = if msg.is_null() { Ok(r) } else { Err(unsafe { CStr::from_ptr(msg) }.to_string_lossy().into_owned()) };
        (self.r0)(e);
        out
    }
}

/// init (final push to a textfile), set a gauge, stop: the textfile holds the gauge.
fn session(so: &Path, dir: &Path) {
    let q = Q::load(so);
    let textfile = dir.join("session.prom");
    let cfg = q.dict(&[("job", q.s("install_test")), ("textfile", q.str(textfile.to_str().unwrap()))]);
    let r = q.call("kdbprom_init", &[cfg, q.id()]).unwrap_or_else(|e| panic!("kdbprom_init from {}: '{e}", so.display()));
    (q.r0)(r);
    let args = [q.s("gauge"), q.s("install_check"), q.str("Set by tests/install.rs."), q.id(), q.id()];
    q.call("kdbprom_declare", &args).unwrap();
    q.call("kdbprom_set", &[q.s("install_check"), (q.kj)(42)]).unwrap();
    let st = q.call("kdbprom_stop", &[q.id()]).unwrap_or_else(|e| panic!("kdbprom_stop: '{e}"));
    assert!(!st.is_null());
    (q.r0)(st);
    let text = std::fs::read_to_string(&textfile).unwrap_or_else(|e| panic!("{}: {e}", textfile.display()));
    assert!(text.lines().any(|l| l.starts_with("install_check{kdb_job=\"install_test\",kdb_instance=") && l.ends_with("} 42")), "{text}");
    assert!(text.contains("kdb_info{"), "{text}");
}

#[test]
fn installs_into_qhome_and_a_prefix_and_loads_from_there() {
    let root = tmpdir("root");
    let script = std::fs::read(repo().join("q/kdbprom.q")).unwrap();

    // QHOME layout: QHOME/kdbprom.q, QHOME/l64/libkdbprom.so, and the link kdbprom.q finds.
    let qhome = root.join("q");
    let out = install(&[qhome.to_str().unwrap()], &[]);
    assert!(out.contains("\\l kdbprom.q"), "{out}");
    assert_eq!(std::fs::read(qhome.join("kdbprom.q")).unwrap(), script);
    let so = qhome.join("l64/libkdbprom.so");
    assert!(so.is_file(), "{}", so.display());
    // Installed without its debug info, which goes beside it and is found by the debug link.
    let built = std::fs::metadata(repo().join("target/release/libkdbprom.so")).unwrap().len();
    let installed = std::fs::metadata(&so).unwrap().len();
    let debug = std::fs::metadata(qhome.join("l64/libkdbprom.so.debug")).expect("libkdbprom.so.debug beside the library").len();
    assert!(installed * 3 < built, "installed {installed} bytes, built {built}: not stripped");
    assert!(debug > installed, "the debug file holds the debug info: {debug} bytes");
    let sections = std::process::Command::new("objdump").arg("-h").arg(&so).output().unwrap();
    let sections = String::from_utf8_lossy(&sections.stdout);
    assert!(sections.contains(".gnu_debuglink") && !sections.contains(".debug_info"), "{sections}");
    let beside = lib_beside(&qhome.join("kdbprom.q"));
    assert_eq!(std::fs::canonicalize(&beside).unwrap(), std::fs::canonicalize(&so).unwrap());
    assert_eq!(std::fs::read_link(&beside).unwrap(), Path::new("l64/libkdbprom.so"), "a relative link: QHOME can move");
    session(&beside, &root);

    // Installing again over a loaded library replaces it (a new file), and $QHOME is the default.
    let out = install(&["--no-build"], &[("QHOME", &qhome)]);
    assert!(out.contains(&format!("installed {}", qhome.join("l64/libkdbprom.so").display())), "{out}");

    // A prefix: both files in one directory.
    let prefix = root.join("opt/kdbprom");
    let out = install(&["--prefix", prefix.to_str().unwrap(), "--no-build"], &[]);
    assert!(out.contains(&format!("\\l {}/kdbprom.q", prefix.display())), "{out}");
    assert_eq!(std::fs::read(prefix.join("kdbprom.q")).unwrap(), script);
    let beside = lib_beside(&prefix.join("kdbprom.q"));
    assert!(beside.is_file() && !beside.is_symlink());
    session(&beside, &root);

    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn refuses_bad_arguments() {
    for args in [&["a", "b"][..], &["--prefix", "x", "y"], &["--bogus"]] {
        let out = Command::new("bash").arg(repo().join("scripts/install.sh")).args(args).env_remove("QHOME").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let out = Command::new("bash").arg(repo().join("scripts/install.sh")).env_remove("QHOME").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("QHOME is not set"));
}
