//! `patchwatch package`: release binaries → one zip per Function App, and one Lambda
//! `bootstrap` directory per handler.
//!
//! A Function App zip holds `host.json`, that app's function folders (from
//! `patchwatch_host::apps::APPS`), the binary renamed `handler` with its executable bit, and
//! `patchwatch.toml` when `--config` is given. Entries carry a fixed timestamp, so the same
//! inputs give byte-identical zips.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use patchwatch_host::apps::{APPS, App};
use zip::{DateTime, ZipWriter, write::SimpleFileOptions};

use crate::EXIT_BAD_INPUT;

/// Build the deployable packages.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Directory for the Function App zips.
    #[arg(long, default_value = "target/package")]
    out: PathBuf,
    /// Directory for the Lambda bootstrap folders (`<dir>/<handler>/bootstrap`, as the SAM template expects).
    #[arg(long, default_value = "target/lambda")]
    lambda_out: PathBuf,
    /// A PATCHWATCH_CONFIG file to ship as `patchwatch.toml` (checked first).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Take the binaries from this directory instead of running `cargo build`.
    #[arg(long)]
    binaries: Option<PathBuf>,
    /// Cargo profile to build with.
    #[arg(long, default_value = "release")]
    profile: String,
}

#[derive(Debug, thiserror::Error)]
enum PackageError {
    #[error("no workspace with host.json and function-definitions/ above {0}; run from the repository")]
    NoWorkspace(String),
    #[error("cargo build failed ({0})")]
    Build(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Zip { path: String, source: zip::result::ZipError },
    #[error("--config {0}")]
    Config(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PackageError + '_ {
    move |source| PackageError::Io { path: path.display().to_string(), source }
}

pub(crate) fn run(args: &Args) -> ExitCode {
    match package(args) {
        Ok(lines) => {
            for line in lines {
                out!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("patchwatch package: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

/// The repository root: the nearest directory at or above the current one with `host.json` and
/// `function-definitions/`.
fn workspace_root() -> Result<PathBuf, PackageError> {
    let cwd = std::env::current_dir().map_err(io(Path::new(".")))?;
    cwd.ancestors()
        .find(|d| d.join("host.json").is_file() && d.join("function-definitions").is_dir())
        .map(Path::to_path_buf)
        .ok_or_else(|| PackageError::NoWorkspace(cwd.display().to_string()))
}

fn package(args: &Args) -> Result<Vec<String>, PackageError> {
    let root = workspace_root()?;
    let config = match &args.config {
        Some(path) => {
            patchwatch_engine::config::load_routing(path, &|_| true)
                .map_err(|problems| PackageError::Config(problems.join("; ")))?;
            Some(std::fs::read(path).map_err(io(path))?)
        }
        None => None,
    };
    let binaries = match &args.binaries {
        Some(dir) => dir.clone(),
        None => build(&root, &args.profile)?,
    };
    let out = root.join(&args.out);
    let lambda_out = root.join(&args.lambda_out);
    std::fs::create_dir_all(&out).map_err(io(&out))?;
    let host = std::fs::read(root.join("host.json")).map_err(io(&root.join("host.json")))?;
    let mut lines = Vec::new();
    for app in APPS {
        let binary_path = binaries.join(app.name);
        let binary = std::fs::read(&binary_path).map_err(io(&binary_path))?;
        let zip_path = out.join(format!("{}.zip", app.name));
        let contents = ZipContents { host: &host, binary: &binary, config: config.as_deref() };
        write_zip(&root, app, &contents, &zip_path)?;
        let zip_size = std::fs::metadata(&zip_path).map_err(io(&zip_path))?.len();
        // Lambda custom runtimes start `bootstrap` from the function's directory.
        let dir = lambda_out.join(app.name);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let bootstrap = dir.join("bootstrap");
        std::fs::write(&bootstrap, &binary).map_err(io(&bootstrap))?;
        set_executable(&bootstrap)?;
        if let Some(c) = &config {
            std::fs::write(dir.join("patchwatch.toml"), c).map_err(io(&dir))?;
        }
        lines.push(format!(
            "{}: {} ({} functions, binary {:.1} MiB, zip {:.1} MiB); {}",
            app.name,
            zip_path.display(),
            app.functions.len(),
            binary.len() as f64 / 1_048_576.0,
            zip_size as f64 / 1_048_576.0,
            bootstrap.display()
        ));
    }
    Ok(lines)
}

fn build(root: &Path, profile: &str) -> Result<PathBuf, PackageError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command.current_dir(root).args(["build", "--locked", "--profile", profile]);
    for app in APPS {
        command.args(["-p", app.name]);
    }
    let status = command.status().map_err(|e| PackageError::Build(e.to_string()))?;
    if !status.success() {
        return Err(PackageError::Build(status.to_string()));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    // Cargo names the `dev` profile's directory `debug`.
    Ok(target.join(if profile == "dev" { "debug" } else { profile }))
}

/// What goes into an app's zip besides its function definitions (those are read from
/// `function-definitions/` while the zip is written).
#[derive(Debug)]
struct ZipContents<'a> {
    host: &'a [u8],
    binary: &'a [u8],
    /// The routing file shipped as `patchwatch.toml`, when `--config` is given.
    config: Option<&'a [u8]>,
}

/// Writes `app`'s Function App zip to `path`, its function definitions read from `root`.
fn write_zip(root: &Path, app: &App, contents: &ZipContents<'_>, path: &Path) -> Result<(), PackageError> {
    let ZipContents { host, binary, config } = *contents;
    let zerr = |source| PackageError::Zip { path: path.display().to_string(), source };
    let file = std::fs::File::create(path).map_err(io(path))?;
    let mut zip = ZipWriter::new(file);
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(DateTime::default())
        .unix_permissions(0o644);
    let mut add = |name: &str, data: &[u8], mode: u32| -> Result<(), PackageError> {
        zip.start_file(name, options.unix_permissions(mode)).map_err(zerr)?;
        zip.write_all(data).map_err(io(path))
    };
    add("host.json", host, 0o644)?;
    for function in app.functions {
        let def = root.join("function-definitions").join(function).join("function.json");
        let text = std::fs::read(&def).map_err(io(&def))?;
        add(&format!("{function}/function.json"), &text, 0o644)?;
    }
    add("handler", binary, 0o755)?;
    if let Some(c) = config {
        add("patchwatch.toml", c, 0o644)?;
    }
    zip.finish().map_err(zerr)?;
    Ok(())
}

#[cfg(unix)]
fn set_executable(path: &Path) -> Result<(), PackageError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(io(path))
}

#[cfg(not(unix))]
fn set_executable(_: &Path) -> Result<(), PackageError> {
    Ok(())
}
