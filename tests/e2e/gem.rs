//! The gem as a user gets it: built by `scripts/build-gem` (run by `scripts/test` before the tests), installed from
//! its file into an empty `GEM_HOME`, its executable run without Bundler.

use crate::common::*;

/// The highest `GLIBC_x.y` symbol version `binary` needs.
fn highest_glibc(binary: &std::path::Path) -> (u32, u32) {
    let out = std::process::Command::new("objdump").arg("-T").arg(binary).output().expect("objdump (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("GLIBC_")
        .skip(1)
        .filter_map(|rest| {
            let v: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
        })
        .max()
        .expect("the binary links glibc")
}

#[tokio::test]
async fn the_gem_installs_into_an_empty_gem_home_and_its_executable_runs_check() {
    let home = installed_gem("gem");
    let home_s = home.to_string_lossy().into_owned();
    let exe = home.join("bin/dyno-scaler");
    let binary = home.join(format!("gems/dyno-scaler-{}-x86_64-linux/libexec/dyno-scaler", env!("CARGO_PKG_VERSION")));
    assert!(exe.exists() && binary.exists(), "{} and {}", exe.display(), binary.display());
    // Heroku's current stacks: heroku-22 has glibc 2.35, heroku-24 2.39.
    let glibc = highest_glibc(&binary);
    assert!(glibc <= (2, 35), "the binary needs GLIBC_{}.{}, above heroku-22's 2.35", glibc.0, glibc.1);

    let fake = fake().await;
    let (_redis, url, _c) = own_redis().await;
    let gem_env = [("GEM_HOME", home_s.clone()), ("GEM_PATH", home_s.clone())];
    // On the runtime's own thread the fake answers only while the test awaits: the executable runs as a Tokio
    // process.
    let run_gem = |args: &[&str], env: Vec<(&'static str, String)>| {
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in gem_env.iter().cloned().chain(env) {
            cmd.env(k, v);
        }
        cmd.output()
    };
    let version = run_gem(&["--version"], vec![]).await.expect("the gem's executable runs");
    assert!(version.status.success());
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), format!("dyno-scaler {}", env!("CARGO_PKG_VERSION")));
    let check = run_gem(&["check"], env_sidekiq(&fake, &url)).await.expect("the gem's executable runs");
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&check.stderr));
    assert!(stdout.contains("check passed"), "{stdout}");
    let _ = std::fs::remove_dir_all(&home);
}
