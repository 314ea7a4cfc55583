import CMPI
import Foundation
import LongConvTraining

/// The processes of a run started by `mpirun` (Open MPI), as a `GradientReducer` (LongConvTraining).
///
/// MPI is initialised only when the process was started by a launcher
/// (``launchedByMPI(environment:)``): a process started on its own never calls into MPI and
/// trains exactly as without this module. Sums are deterministic: every scalar is added in rank
/// order in Double by one process (`RankOrderSum`: a reduce-scatter then an allgather, with
/// the traffic of a ring allreduce), so the result has the same bits on every process and in
/// every run, whatever algorithms MPI picks.
public final class MPIWorld: GradientReducer {
  /// This process, `0 ..< size`.
  public let rank: Int
  /// Processes in `MPI_COMM_WORLD`.
  public let size: Int
  /// Processes of this job on this node (`OMPI_COMM_WORLD_LOCAL_SIZE`; 1 when unknown).
  public let localSize: Int
  private let comm: MPI_Comm
  /// A duplicate of `comm` for the second phase of `RankOrderSum`.
  private let gatherComm: MPI_Comm
  /// Sums started by ``startSum(_:)``, in the order they started.
  private var inFlight: [RankOrderSum] = []
  private var finalized = false

  /// The environment variables a launcher sets: Open MPI's `mpirun` (`OMPI_COMM_WORLD_SIZE`),
  /// PMIx (`PMIX_RANK`, as under Slurm's `srun --mpi=pmix`) or PMI (`PMI_RANK`).
  public static let launcherVariables = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"]

  /// Whether a launcher started this process.
  public static func launchedByMPI(
    environment: [String: String] = ProcessInfo.processInfo.environment
  ) -> Bool {
    launcherVariables.contains { environment[$0] != nil }
  }

  /// Initialises MPI (`MPI_Init_thread`, funneled: only the main thread calls MPI) when a
  /// launcher started this process, `nil` otherwise.
  public static func initializeIfLaunched(
    environment: [String: String] = ProcessInfo.processInfo.environment
  ) -> MPIWorld? {
    launchedByMPI(environment: environment) ? MPIWorld(environment: environment) : nil
  }

  private init(environment: [String: String]) {
    var provided: Int32 = 0
    MPI_Init_thread(nil, nil, lck_mpi_thread_funneled(), &provided)
    comm = lck_mpi_comm_world()
    var duplicate: MPI_Comm? = nil
    let status = MPI_Comm_dup(comm, &duplicate)
    guard status == MPI_SUCCESS, let duplicate else {
      fatalError("MPIWorld: MPI_Comm_dup failed with code \(status)")
    }
    gatherComm = duplicate
    var r: Int32 = 0
    var s: Int32 = 0
    MPI_Comm_rank(comm, &r)
    MPI_Comm_size(comm, &s)
    rank = Int(r)
    size = Int(s)
    localSize = max(1, environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap { Int($0) } ?? 1)
  }

  /// The compute threads of each process when none are asked for: this node's processors
  /// shared equally by this job's processes on it (at least 1).
  public func defaultThreads(processors: Int = ProcessInfo.processInfo.activeProcessorCount) -> Int {
    max(1, processors / localSize)
  }

  private func check(_ code: Int32, _ what: String) throws {
    guard code == MPI_SUCCESS else { throw MPIError(rank: rank, call: what, code: code) }
  }

  /// Replaces `buffer` with its elementwise sum over every process, the same bits on every
  /// process (`RankOrderSum`).
  public func sum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
    guard buffer.count > 0 else { return }
    try completeSums()  // the sums started before come first
    try RankOrderSum(buffer, comm: comm, gatherComm: gatherComm, rank: rank, size: size).wait()
  }

  /// Starts the sum of `buffer` over every process (`RankOrderSum`) and returns.
  public func startSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
    guard buffer.count > 0 else { return }
    inFlight.append(try RankOrderSum(buffer, comm: comm, gatherComm: gatherComm, rank: rank, size: size))
  }

  /// Moves the started sums on (`MPI_Test`, which is also what lets MPI move their data
  /// while this process computes).
  public func progressSums() throws {
    // In order, and no further than the first sum still scattering: the allgathers must
    // start in the same order on every process (see RankOrderSum).
    for sum in inFlight where !sum.isDone {
      try sum.progress()
      if sum.isScattering { break }
    }
  }

  /// Waits for every started sum, in the order they started.
  public func completeSums() throws {
    defer { inFlight.removeAll(keepingCapacity: true) }
    for sum in inFlight { try sum.wait() }
  }

  /// The elementwise sums of `values` over every process, added in rank order.
  public func sum(_ values: [Double]) throws -> [Double] {
    let n = values.count
    var all = [Double](repeating: 0, count: n * size)
    try values.withUnsafeBufferPointer { v in
      try all.withUnsafeMutableBufferPointer { a in
        try check(
          MPI_Allgather(
            v.baseAddress, Int32(n), lck_mpi_double(), a.baseAddress, Int32(n), lck_mpi_double(), comm),
          "MPI_Allgather")
      }
    }
    return (0..<n).map { i in (0..<size).reduce(0.0) { $0 + all[$1 * n + i] } }
  }

  /// Replaces `buffer` with rank `root`'s on every process.
  public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, from root: Int) throws {
    var start = 0
    while start < buffer.count {
      let n = min(buffer.count - start, 1 << 28)
      try check(
        MPI_Bcast(buffer.baseAddress! + start, Int32(n), lck_mpi_float(), Int32(root), comm), "MPI_Bcast")
      start += n
    }
  }

  /// `value` of every process, by rank.
  public func gather(_ value: UInt64) throws -> [UInt64] {
    var mine = value
    var all = [UInt64](repeating: 0, count: size)
    try all.withUnsafeMutableBufferPointer { a in
      try check(
        MPI_Allgather(&mine, 1, lck_mpi_uint64(), a.baseAddress, 1, lck_mpi_uint64(), comm), "MPI_Allgather")
    }
    return all
  }

  /// Returns when every process has called it.
  public func barrier() throws { try check(MPI_Barrier(comm), "MPI_Barrier") }

  /// Ends every process of the job (`MPI_Abort`) with `status`.
  public func abort(status: Int32) -> Never {
    fflush(nil)
    MPI_Abort(comm, status)
    exit(status)
  }

  /// `MPI_Finalize`, once.
  public func finalize() {
    guard !finalized else { return }
    finalized = true
    var duplicate: MPI_Comm? = gatherComm
    MPI_Comm_free(&duplicate)
    MPI_Finalize()
  }
}

/// An MPI call that returned an error.
public struct MPIError: Error, CustomStringConvertible {
  /// The process.
  public let rank: Int
  /// The call.
  public let call: String
  /// Its return code.
  public let code: Int32
  /// `rank R: CALL failed with code C`.
  public var description: String { "rank \(rank): \(call) failed with code \(code)" }
}
