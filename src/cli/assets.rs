//! `frontier assets ...`: a static site made ready for the CDN.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use rdkafka::producer::FutureRecord;

use crate::bus::{SchemaCatalog, kafka};
use crate::cdn::publish::publish_dir;
use crate::cdn::{AssetStore, BuildOptions, BuildReport, build_site};
use crate::clock;
use crate::settings::Settings;

/// `frontier assets ...`
#[derive(Debug, Subcommand)]
pub enum AssetsCommand {
    /// Minify HTML, CSS and JS, content-hash every referenced file (rewriting the references),
    /// precompress text files (brotli, zstd, gzip) and write a Vite-compatible manifest with
    /// sizes, hashes, SRI and surrogate keys to OUT/.vite/manifest.json. HTML pages keep their
    /// URLs.
    Build(BuildArgs),
    /// Upload what a build adds to the asset store (`[assets.store]`: a folder, or any
    /// S3-compatible bucket), make it the live build, and send one `AssetChange` with the new
    /// and previous manifest ids to the changes topic, for the CDN purger.
    Publish(PublishArgs),
}

/// `frontier assets publish` options.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The output folder of `frontier assets build`.
    pub dir: PathBuf,
    /// Publish without telling the purger (no `AssetChange`): the edge keeps what it cached.
    #[arg(long)]
    pub no_change: bool,
}

/// `frontier assets build` options.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The site's source folder.
    pub src: PathBuf,
    /// Where the built site goes; neither folder may be inside the other.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace what a non-empty OUT holds (only once the build succeeded).
    #[arg(long)]
    pub clean: bool,
    /// Print the report (totals and every file) as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn assets(settings: &Settings, command: AssetsCommand) -> anyhow::Result<ExitCode> {
    match command {
        AssetsCommand::Build(args) => build(args).await,
        AssetsCommand::Publish(args) => publish(settings, args).await,
    }
}

async fn publish(settings: &Settings, args: PublishArgs) -> anyhow::Result<ExitCode> {
    let assets = &settings.assets;
    let store = AssetStore::open(&assets.store)?;
    let report = publish_dir(&store, &args.dir, &assets.public_url, assets.grace, clock::now_millis())
        .await
        .with_context(|| format!("publishing {} to {}", args.dir.display(), store.describe()))?;
    println!(
        "published {} to {}: {} objects uploaded ({} bytes), {} already there; live: {}",
        args.dir.display(),
        store.describe(),
        report.uploaded.0,
        report.uploaded.1,
        report.unchanged,
        report.manifest_id
    );
    let Some(change) = report.change else {
        println!("that build was already live: nothing to purge");
        return Ok(ExitCode::SUCCESS);
    };
    if args.no_change {
        println!("no change sent (--no-change)");
        return Ok(ExitCode::SUCCESS);
    }
    let catalog = SchemaCatalog::load_dir(&settings.paths.schemas)
        .with_context(|| format!("loading schemas from {}", settings.paths.schemas.display()))?;
    let payload = catalog.encode_record(&change).context("encoding the AssetChange")?;
    let topic = &settings.workers.cdn_purger.input_topic;
    let producer = kafka::producer(&settings.kafka).context("creating the Kafka producer")?;
    let record = FutureRecord::<[u8], [u8]>::to(topic).key(change.id.as_bytes()).payload(&payload);
    producer
        .send(record, settings.kafka.request_timeout)
        .await
        .map_err(|(error, _)| error)
        .with_context(|| format!("sending the AssetChange to {topic}"))?;
    println!(
        "change {} sent to {topic} (manifest {} replacing {})",
        change.id,
        report.manifest_id,
        report.previous_manifest_id.as_deref().unwrap_or("nothing")
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let (src, out) = (args.src.clone(), args.out.clone());
    let options = BuildOptions { clean: args.clean };
    // Minifying and brotli at quality 11 are CPU work: off the async workers.
    let report = tokio::task::spawn_blocking(move || build_site(&src, &out, &options))
        .await
        .context("the build thread")?
        .with_context(|| format!("building {} into {}", args.src.display(), args.out.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).context("rendering the report")?);
    } else {
        print!("{}", table(&report, &args));
    }
    Ok(ExitCode::SUCCESS)
}

/// The report for a person: totals, each as bytes and as a share of the source.
fn table(report: &BuildReport, args: &BuildArgs) -> String {
    let totals = &report.totals;
    let share = |bytes: u64| {
        if totals.source_bytes == 0 {
            "-".to_owned()
        } else {
            format!("{:.1}%", bytes as f64 * 100.0 / totals.source_bytes as f64)
        }
    };
    let mut text = format!(
        "built {} files from {} into {} in {} ms (manifest {}, {})\n",
        totals.files,
        args.src.display(),
        args.out.display(),
        report.elapsed_ms,
        report.manifest_id,
        report.manifest_path.display()
    );
    text.push_str(&format!("{:<10} {:>10} {:>9}\n", "", "bytes", "of source"));
    for (label, bytes) in [
        ("source", totals.source_bytes),
        ("minified", totals.built_bytes),
        ("brotli", totals.br_bytes),
        ("gzip -9", totals.gzip_bytes),
        ("zstd", totals.zstd_bytes),
        ("best", totals.best_bytes),
    ] {
        text.push_str(&format!("{label:<10} {bytes:>10} {:>9}\n", share(bytes)));
    }
    text
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn assets_build_reads_its_folders_and_flags() {
        let cli =
            Cli::try_parse_from(["frontier", "assets", "build", "site", "--out", "dist", "--clean", "--json"]).unwrap();
        let Command::Assets { action: AssetsCommand::Build(args) } = cli.command else { panic!("{:?}", cli.command) };
        assert_eq!((args.src, args.out, args.clean, args.json), ("site".into(), "dist".into(), true, true));
        assert!(Cli::try_parse_from(["frontier", "assets", "build", "site"]).is_err(), "--out is required");
    }

    #[test]
    fn the_table_shows_every_encoding_as_a_share_of_the_source() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/site");
        let parent = tempfile::tempdir().unwrap();
        let args = BuildArgs { src: src.clone(), out: parent.path().join("out"), clean: false, json: false };
        let report = build_site(&args.src, &args.out, &BuildOptions::default()).unwrap();
        let text = table(&report, &args);
        for label in ["source", "minified", "brotli", "gzip -9", "zstd", "best", "100.0%"] {
            assert!(text.contains(label), "{label} in\n{text}");
        }
    }
}
