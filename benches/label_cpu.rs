//! In-process timings of the CPU labeller (`cargo bench --bench label_cpu`).
//!
//! A plain `harness = false` timer rather than divan/criterion: it needs no
//! extra dependency and reports what the targets are stated in
//! (median ms per volume, 1 slab vs the parallel split). Volumes are built
//! here with a fixed xorshift seed, so runs are comparable across commits.
//! `LABEL_BENCH_N=256` picks a smaller cube for a quick look.
//! `LABEL_BENCH_RECYCLE=1` instead compares a fresh label volume with writing
//! into the previous result's (`label_cpu_recycling`, 26-connectivity).
//! `LABEL_BENCH_STATS=1` instead compares labelling with and without the fused
//! lesion statistics (one slab, 26-connectivity).
//! `LABEL_BENCH_PEAK=sparse|random|zero|one` instead measures the peak
//! resident memory one labelling adds (VmHWM from /proc/self/status, Linux),
//! one volume per process so earlier volumes do not raise the mark.
//! `LABEL_BENCH_FLOORS=1` instead measures the labeller against this machine's
//! own limits, in interleaved rounds so that both see the same load: the time
//! one thread takes to read a mask (the all-zero volume cannot be labelled
//! faster), how much a second thread speeds up pure arithmetic (a
//! ceiling for the labeller's 2-thread speed-up; on shared VMs the second
//! vCPU is not always there), and how much it speeds up two independent
//! one-thread labellings of the same volume run at once (the ceiling for
//! memory-bound work of this kind in one process: both threads share the
//! memory bandwidth and the kernel's page allocator), and it labels the
//! all-zero mask both in resident memory and as lesioneval's reader returns it
//! from a file.

use lesioneval::label::{Connectivity, label_cpu, label_cpu_recycling, label_cpu_slabs, label_cpu_slabs_without_stats};
use std::time::Instant;

fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

/// Random balls covering about `target` of the volume (like bench_ccl.py's blobs).
fn blobs(n: usize, target: f64) -> Vec<u8> {
    let mut m = vec![0u8; n * n * n];
    let mut rng = xorshift(12345);
    let rmax = (n as f64 / 24.0).max(2.0);
    let mut filled = 0usize;
    while (filled as f64) < target * m.len() as f64 {
        let r = 1.0 + (rng() % 1000) as f64 / 1000.0 * (rmax - 1.0);
        let c: Vec<f64> = (0..3).map(|_| (rng() % n as u64) as f64).collect();
        let lo = |a: usize| (c[a] - r).floor().max(0.0) as usize;
        let hi = |a: usize| ((c[a] + r).ceil() as usize + 1).min(n);
        for z in lo(2)..hi(2) {
            for y in lo(1)..hi(1) {
                for x in lo(0)..hi(0) {
                    let d = [x as f64 - c[0], y as f64 - c[1], z as f64 - c[2]];
                    let v = &mut m[x + n * (y + n * z)];
                    if d.iter().map(|a| a * a).sum::<f64>() <= r * r && *v == 0 {
                        *v = 1;
                        filled += 1;
                    }
                }
            }
        }
    }
    m
}

/// Zeros in real memory: `vec![0; n]` maps the kernel's shared zero page, which
/// reads far faster than resident memory. lesioneval's own reader leaves a
/// mask's empty pages on that page too (io::sparse_mask), but a caller's
/// buffer need not, so the timings use resident memory, the slower case
/// (`LABEL_BENCH_FLOORS` also times the reader's all-zero mask). The `black_box`es
/// keep LLVM from folding "fill with 1, then with 0" back into a zeroed
/// allocation (it did: the all-zero rows then read the zero page again).
fn resident_zeros(n: usize) -> Vec<u8> {
    let mut m = vec![1u8; n];
    std::hint::black_box(&mut m);
    m.fill(std::hint::black_box(0));
    m
}

fn median_ms(repeat: usize, mut f: impl FnMut()) -> f64 {
    median(
        (0..repeat)
            .map(|_| {
                let s = Instant::now();
                f();
                s.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

/// Peak resident set size of this process so far, in bytes (0 where /proc is missing).
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn peak(which: &str, n: usize) {
    let shape = [n, n, n];
    let mut noise = xorshift(99);
    let mask: Vec<u8> = match which {
        "sparse" => blobs(n, 0.013),
        "random" => (0..n * n * n).map(|_| (noise() >> 63) as u8).collect(),
        "zero" => resident_zeros(n * n * n),
        _ => vec![1u8; n * n * n],
    };
    let before = peak_rss();
    let c = label_cpu(&mask, shape, Connectivity::TwentySix);
    let after = peak_rss();
    let (input, output) = (mask.len() as u64, 4 * mask.len() as u64);
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    println!(
        "| {which} {n}³ | {} components | input {:.0} MiB | output {:.0} MiB | labelling added {:.0} MiB to the peak \
         (input + added = {:.2} × (input + output)) |",
        c.count(),
        mib(input),
        mib(output),
        mib(after - before),
        (input + after - before) as f64 / (input + output) as f64
    );
}

/// Pure arithmetic (four xorshift lanes in registers), split in two tasks.
fn alu(iters: usize) -> u64 {
    use rayon::prelude::*;
    (0..2u64)
        .into_par_iter()
        .map(|t| {
            let mut lanes = [t + 1, t + 2, t + 3, t + 4].map(xorshift);
            let mut acc = 0u64;
            for _ in 0..iters / 2 {
                for l in &mut lanes {
                    acc ^= l();
                }
            }
            acc
        })
        .sum()
}

/// One thread's streaming read of `mask` (an OR of every byte).
fn read_all(mask: &[u8]) -> u64 {
    mask.chunks_exact(64)
        .map(|c| {
            c.chunks_exact(8)
                .fold(0u64, |a, w| a | u64::from_ne_bytes(w.try_into().unwrap_or([0; 8])))
        })
        .fold(0, |a, b| a | b)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn floors(volumes: &[(&str, Vec<u8>)], shape: [usize; 3]) {
    const ROUNDS: usize = 9;
    let pool = |t| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .expect("thread pool")
    };
    let (one, two) = (pool(1), pool(2));
    let c = Connectivity::TwentySix;
    let time = |f: &mut dyn FnMut()| {
        let s = Instant::now();
        f();
        s.elapsed().as_secs_f64() * 1e3
    };
    let zero = &volumes.iter().find(|v| v.0 == "all-zero").expect("all-zero volume").1;
    let (mut read, mut label_zero) = (Vec::new(), Vec::new());
    let mut alu_ratio = Vec::new();
    let mut label_ratio = vec![Vec::new(); volumes.len()];
    let mut pair_ratio = vec![Vec::new(); volumes.len()];
    println!(
        "{}×{}×{}, 26-connectivity, {ROUNDS} interleaved rounds",
        shape[0], shape[1], shape[2]
    );
    println!("Each volume: 1 thr ÷ 2 thr of one labelling, then (in brackets) how much a second thread");
    println!("speeds up two independent one-thread labellings of it run at once (2 × alone ÷ together).");
    println!(
        "| round | ALU 1→2 threads | {} |",
        volumes.iter().map(|v| v.0).collect::<Vec<_>>().join(" | ")
    );
    println!("|---|---|{}", "---|".repeat(volumes.len()));
    for round in 0..ROUNDS {
        read.push(one.install(|| {
            time(&mut || {
                std::hint::black_box(read_all(zero));
            })
        }));
        label_zero.push(one.install(|| time(&mut || drop(label_cpu(zero, shape, c)))));
        let a1 = one.install(|| {
            time(&mut || {
                std::hint::black_box(alu(40_000_000));
            })
        });
        let a2 = two.install(|| {
            time(&mut || {
                std::hint::black_box(alu(40_000_000));
            })
        });
        alu_ratio.push(a1 / a2);
        let mut cells = Vec::new();
        for (v, (_, mask)) in volumes.iter().enumerate() {
            let l1 = one.install(|| time(&mut || drop(label_cpu(mask, shape, c))));
            let l2 = two.install(|| time(&mut || drop(label_cpu(mask, shape, c))));
            // The same serial labelling twice at once, one per thread: as
            // parallel as work gets, with the same shared memory system and
            // kernel (one process), so the best a split labelling can hope for.
            let serial = || drop(label_cpu_slabs(mask, shape, c, 1));
            let pair = two.install(|| time(&mut || _ = rayon::join(serial, serial)));
            label_ratio[v].push(l1 / l2);
            pair_ratio[v].push(2.0 * l1 / pair);
            cells.push(format!("{:.2} ({:.2})", l1 / l2, 2.0 * l1 / pair));
        }
        println!("| {round} | {:.2} | {} |", a1 / a2, cells.join(" | "));
    }
    let fmt = |v: &[f64]| format!("{:.2}", median(v.to_vec()));
    // Median over rounds of a ratio divided by a ceiling's in the same round.
    let quotient = |r: &[f64], ceiling: &[f64]| fmt(&r.iter().zip(ceiling).map(|(a, b)| a / b).collect::<Vec<_>>());
    println!(
        "| median | {} | {} |",
        fmt(&alu_ratio),
        label_ratio.iter().map(|r| fmt(r)).collect::<Vec<_>>().join(" | ")
    );
    println!(
        "| median, two at once | | {} |",
        pair_ratio.iter().map(|r| fmt(r)).collect::<Vec<_>>().join(" | ")
    );
    println!(
        "| median of (label ÷ ALU) | 1 | {} |",
        label_ratio
            .iter()
            .map(|r| quotient(r, &alu_ratio))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!(
        "| median of (label ÷ two at once) | | {} |",
        label_ratio
            .iter()
            .zip(&pair_ratio)
            .map(|(r, p)| quotient(r, p))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let (r, l) = (median(read), median(label_zero));
    println!(
        "\nOne thread: reading the all-zero mask {r:.1} ms, labelling it {l:.1} ms ({:.2} × the read).",
        l / r
    );
    // The same volume as the reader returns it: written to a file and read back.
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("zero.nii.gz");
    let geometry = lesioneval::io::Geometry::new(shape, [1.0; 3]);
    let header = lesioneval::io::Header::from_geometry(&geometry);
    lesioneval::io::write_labels(&path, &vec![0u32; zero.len()], 0, &header, &geometry).expect("write zero.nii.gz");
    let read_back = lesioneval::io::read_mask(&path).expect("read zero.nii.gz").data;
    let from_file = median(
        (0..ROUNDS)
            .map(|_| one.install(|| time(&mut || drop(label_cpu(&read_back, shape, c)))))
            .collect(),
    );
    println!("Labelling it as lesioneval's reader returns it (empty pages on the zero page): {from_file:.1} ms.");
}

fn main() {
    let n: usize = std::env::var("LABEL_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    if let Ok(which) = std::env::var("LABEL_BENCH_PEAK") {
        return peak(&which, n);
    }
    let shape = [n, n, n];
    let mut noise = xorshift(99);
    let volumes: Vec<(&str, Vec<u8>)> = vec![
        ("sparse blobs 1.3%", blobs(n, 0.013)),
        ("random p=0.5", (0..n * n * n).map(|_| (noise() >> 63) as u8).collect()),
        ("all-zero", resident_zeros(n * n * n)),
        ("all-one", vec![1u8; n * n * n]),
    ];
    if std::env::var("LABEL_BENCH_FLOORS").is_ok() {
        return floors(&volumes, shape);
    }
    if std::env::var("LABEL_BENCH_RECYCLE").is_ok() {
        let c = Connectivity::TwentySix;
        println!(
            "{n}³, 26-connectivity, rayon threads {}; median ms of 5",
            rayon::current_num_threads()
        );
        println!("| volume | fresh label volume | recycled (previous result's) | fresh / recycled |");
        println!("|---|---|---|---|");
        for (name, mask) in &volumes {
            let fresh = median_ms(5, || drop(label_cpu(mask, shape, c)));
            let mut prev = Some(label_cpu(mask, shape, c));
            let warm = median_ms(5, || {
                if let Some(p) = prev.take() {
                    prev = Some(label_cpu_recycling(mask, shape, c, p));
                }
            });
            println!("| {name} | {fresh:.1} | {warm:.1} | {:.2} |", fresh / warm);
        }
        return;
    }
    if std::env::var("LABEL_BENCH_STATS").is_ok() {
        println!("{n}³, 1 slab, median ms of 7");
        println!("| volume | conn | with statistics | without | extra |");
        println!("|---|---|---|---|---|");
        for (name, mask) in &volumes {
            for c in Connectivity::ALL {
                let without = median_ms(7, || drop(label_cpu_slabs_without_stats(mask, shape, c, 1)));
                let with = median_ms(7, || drop(label_cpu_slabs(mask, shape, c, 1)));
                println!(
                    "| {name} | {c} | {with:.1} | {without:.1} | {:+.1} % |",
                    (with / without - 1.0) * 100.0
                );
            }
        }
        return;
    }
    let threads = rayon::current_num_threads();
    println!("{n}³, rayon threads {threads}; median ms of 5 (label_cpu = auto split; 1 slab = serial)");
    println!("| volume | conn | 1 slab | label_cpu | speed-up |");
    println!("|---|---|---|---|---|");
    for (name, mask) in &volumes {
        for c in Connectivity::ALL {
            let serial = median_ms(5, || drop(label_cpu_slabs(mask, shape, c, 1)));
            let auto = median_ms(5, || drop(label_cpu(mask, shape, c)));
            println!("| {name} | {c} | {serial:.1} | {auto:.1} | {:.2} |", serial / auto);
        }
    }
}
