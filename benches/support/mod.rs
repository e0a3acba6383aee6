//! What the benchmarks share: running a server in a child process pinned to its own core, and
//! reading that process's CPU time and memory from /proc.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

/// The core the server under test runs on; the load generator takes the other one.
pub const SERVER_CORE: usize = 1;
pub const CLIENT_CORE: usize = 0;

/// Pins the calling thread (and the threads it starts later) to `core`, if the machine has it.
pub fn pin_to_core(core: usize) -> bool {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    match cores.into_iter().find(|id| id.id == core) {
        Some(id) => core_affinity::set_for_current(id),
        None => false,
    }
}

/// The entry point of a bench binary: `--server KIND` runs one server (in the child process the
/// parent started), `--bench` (as `cargo bench` passes) runs the benchmarks, and anything else
/// (`cargo test --benches` runs bench targets in test mode) does nothing.
pub fn dispatch(run_server: fn(&str), run_benchmarks: fn()) {
    let args: Vec<String> = std::env::args().collect();
    if let Some(position) = args.iter().position(|arg| arg == "--server") {
        let kind = args.get(position + 1).cloned().unwrap_or_default();
        return run_server(&kind);
    }
    if args.iter().any(|arg| arg == "--bench") {
        run_benchmarks();
    }
}

/// A single-threaded runtime on `core`, with the open-file limit raised; returns the limit too.
pub fn pinned_runtime(core: usize) -> (tokio::runtime::Runtime, u64) {
    let fd_limit = raise_fd_limit();
    pin_to_core(core);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    (runtime, fd_limit)
}

/// A multi-threaded runtime (tokio's default: one worker per core) with every thread on `core`,
/// as `#[tokio::main]` servers run when the process is pinned to one core (`taskset`); returns
/// the open-file limit too. Threads inherit the affinity of the thread that starts them.
pub fn pinned_multi_thread_runtime(core: usize) -> (tokio::runtime::Runtime, u64) {
    let fd_limit = raise_fd_limit();
    pin_to_core(core);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    (runtime, fd_limit)
}

/// Raises the open-file limit to its hard maximum (idle-connection scenarios need thousands).
pub fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024)
}

/// A server running in a child process of this same bench binary.
pub struct ServerProcess {
    pub name: &'static str,
    pub addr: SocketAddr,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl ServerProcess {
    /// Starts `current_exe --server <kind>`; the child prints `READY <addr>` once bound.
    pub fn start(name: &'static str, kind: &str) -> ServerProcess {
        let exe = std::env::current_exe().expect("bench binary path");
        let mut child = Command::new(exe)
            .args(["--server", kind])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start server process");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("server ready line");
        let addr = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("unexpected server output: {line:?}"))
            .parse()
            .expect("server address");
        ServerProcess {
            name,
            addr,
            child,
            stdin,
            stdout,
        }
    }

    /// Starts an external server command (a baseline written in another language) that listens on
    /// `addr`; waits until it accepts connections. `None` if it cannot be started.
    pub fn start_command(
        name: &'static str,
        program: &str,
        args: &[&str],
        addr: SocketAddr,
    ) -> Option<ServerProcess> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let stdin = child.stdin.take()?;
        let stdout = BufReader::new(child.stdout.take()?);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20)); // polling a process we do not control
        }
        Some(ServerProcess {
            name,
            addr,
            child,
            stdin,
            stdout,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time the server process has used so far (all threads), in nanoseconds.
    pub fn cpu_ns(&self) -> u64 {
        process_cpu_ns(self.pid())
    }

    /// Resident memory of the server process, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    }

    /// Sends a command line to the server and returns its one-line answer.
    pub fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").expect("server stdin");
        self.stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("server answer");
        line.trim().to_owned()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sum of the on-CPU time of every thread of `pid` (first field of each task's schedstat).
pub fn process_cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|task| task.ok())
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// In a server child: waits for commands on stdin and answers them with `answer`, forever. The
/// parent kills the child when done, so a closed stdin simply ends the loop.
pub fn serve_commands(answer: impl Fn(&str) -> String + Send + 'static) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            let reply = answer(line.trim());
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{reply}");
            let _ = stdout.flush();
        }
    });
}

/// Median of a few measurements.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

pub fn fmt_rate(per_second: f64) -> String {
    if per_second >= 1e6 {
        format!("{:.2}M/s", per_second / 1e6)
    } else if per_second >= 1e3 {
        format!("{:.1}k/s", per_second / 1e3)
    } else {
        format!("{per_second:.0}/s")
    }
}

pub fn fmt_duration(duration: Duration) -> String {
    let micros = duration.as_secs_f64() * 1e6;
    if micros >= 1000.0 {
        format!("{:.2}ms", micros / 1000.0)
    } else {
        format!("{micros:.1}us")
    }
}

/// A number from the environment, or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Whether `BENCH_ONLY` (comma-separated scenario names) selects `scenario`; all run without it.
pub fn wanted(scenario: &str) -> bool {
    match std::env::var("BENCH_ONLY") {
        Ok(only) => only.split(',').any(|name| name.trim() == scenario),
        Err(_) => true,
    }
}

/// Whether the server named `name` takes part: `BENCH_SERVERS` (comma-separated names) narrows
/// the run, e.g. to profile one server. Callers keep the first server of a table regardless,
/// since every ratio is against it.
pub fn server_wanted(name: &str) -> bool {
    match std::env::var("BENCH_SERVERS") {
        Ok(only) => only.split(',').any(|wanted| wanted.trim() == name),
        Err(_) => true,
    }
}

/// One cell: how many operations per second, and the server's CPU time per operation.
#[derive(Clone, Copy, Default)]
pub struct Measured {
    pub per_second: f64,
    pub cpu_ns_per_op: f64,
}

/// Warms up for a quarter of `window`, then measures `window`: the operations `done` counted and
/// the CPU `server` used meanwhile.
pub async fn measure_window(
    server: &ServerProcess,
    done: &std::sync::atomic::AtomicU64,
    window: Duration,
) -> Measured {
    use std::sync::atomic::Ordering::Relaxed;
    tokio::time::sleep(window / 4).await;
    let (before, cpu_before, started) = (
        done.load(Relaxed),
        server.cpu_ns(),
        std::time::Instant::now(),
    );
    tokio::time::sleep(window).await;
    let (after, cpu_after, elapsed) = (done.load(Relaxed), server.cpu_ns(), started.elapsed());
    let operations = after.saturating_sub(before).max(1) as f64;
    Measured {
        per_second: operations / elapsed.as_secs_f64(),
        cpu_ns_per_op: cpu_after.saturating_sub(cpu_before) as f64 / operations,
    }
}

/// Medians per server of several rounds, printed with ratios against the first server.
pub fn print_table(servers: &[ServerProcess], runs: Vec<Vec<Measured>>, unit: &str) {
    let medians: Vec<Measured> = runs
        .into_iter()
        .map(|runs| Measured {
            per_second: median(runs.iter().map(|run| run.per_second).collect()),
            cpu_ns_per_op: median(runs.iter().map(|run| run.cpu_ns_per_op).collect()),
        })
        .collect();
    let ours = medians[0];
    println!(
        "{:<10} {:>12} {:>12} {:>16} {:>16}",
        "server",
        "rate",
        format!("cpu/{unit}"),
        "wsgrpc rate x",
        "wsgrpc cpu x"
    );
    for (server, measured) in servers.iter().zip(&medians) {
        println!(
            "{:<10} {:>12} {:>10.0}ns {:>15.2}x {:>15.2}x",
            server.name,
            fmt_rate(measured.per_second),
            measured.cpu_ns_per_op,
            ours.per_second / measured.per_second,
            // Above 1: that server needs more CPU per operation than wsgrpc.
            measured.cpu_ns_per_op / ours.cpu_ns_per_op,
        );
    }
}
