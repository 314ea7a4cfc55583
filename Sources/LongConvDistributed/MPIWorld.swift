import CMPI
import Foundation
import LongConvTraining

/// The processes of a run started by `mpirun` (Open MPI), as a `GradientReducer` (LongConvTraining).
///
/// MPI is initialised only when the process was started by a launcher
/// (``launchedByMPI(environment:)``): a process started on its own never calls into MPI and
/// trains exactly as without this module. Sums are deterministic: every process gathers every
/// process's buffer (`MPI_Allgather`) and adds them in rank order in Double, so the result has
/// the same bits on every process and in every run, whatever algorithm MPI picks.
public final class MPIWorld: GradientReducer {
  /// This process, `0 ..< size`.
  public let rank: Int
  /// Processes in `MPI_COMM_WORLD`.
  public let size: Int
  /// Processes of this job on this node (`OMPI_COMM_WORLD_LOCAL_SIZE`; 1 when unknown).
  public let localSize: Int
  private let comm: MPI_Comm
  private var gathered: [Float] = []
  /// Sums started by ``startSum(_:)`` and not yet added up, in the order they started.
  private var inFlight: [PendingSum] = []
  /// Buffers of finished nonblocking gathers, reused by later ones.
  private var spareGathers: [UnsafeMutableBufferPointer<Float>] = []

  /// A nonblocking gather: its request, the buffer that takes the sum, and where every
  /// process's copy arrives.
  private struct PendingSum {
    var request: MPI_Request?
    let buffer: UnsafeMutableBufferPointer<Float>
    let gathered: UnsafeMutableBufferPointer<Float>
    var done = false
  }
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

  /// Replaces `buffer` with its elementwise sum over every process, added in rank order in
  /// Double (the same bits on every process).
  public func sum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
    let n = buffer.count
    guard n > 0 else { return }
    precondition(n <= Int(Int32.max), "MPIWorld.sum: \(n) scalars in one call")
    if gathered.count < n * size { gathered = [Float](repeating: 0, count: n * size) }
    try gathered.withUnsafeMutableBufferPointer { all in
      try check(
        MPI_Allgather(
          buffer.baseAddress, Int32(n), lck_mpi_float(), all.baseAddress, Int32(n), lck_mpi_float(), comm),
        "MPI_Allgather")
      addInRankOrder(UnsafeMutableBufferPointer(rebasing: all[0..<n * size]), into: buffer)
    }
  }

  /// `buffer[i]` = the sum over ranks `r` of `all[r * n + i]`, added in rank order in Double.
  private func addInRankOrder(
    _ all: UnsafeMutableBufferPointer<Float>, into buffer: UnsafeMutableBufferPointer<Float>
  ) {
    let n = buffer.count
    for i in 0..<n {
      var total = 0.0
      for r in 0..<size { total += Double(all[r * n + i]) }
      buffer[i] = Float(total)
    }
  }

  /// Starts the sum of `buffer` over every process (`MPI_Iallgather`, then the same rank-order
  /// addition as the blocking `sum(_:)`, done when the gather has
  /// arrived) and returns.
  public func startSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
    let n = buffer.count
    guard n > 0 else { return }
    precondition(n <= Int(Int32.max), "MPIWorld.startSum: \(n) scalars in one call")
    let index = spareGathers.firstIndex { $0.count >= n * size }
    let gathered =
      index.map { spareGathers.remove(at: $0) }
      ?? UnsafeMutableBufferPointer<Float>.allocate(capacity: n * size)
    var pending = PendingSum(request: lck_mpi_request_null(), buffer: buffer, gathered: gathered)
    try check(
      MPI_Iallgather(
        buffer.baseAddress, Int32(n), lck_mpi_float(), gathered.baseAddress, Int32(n), lck_mpi_float(), comm,
        &pending.request),
      "MPI_Iallgather")
    inFlight.append(pending)
  }

  /// Tests the started sums (`MPI_Test`, which also lets MPI move their data) and adds up
  /// those that have arrived.
  public func progressSums() throws {
    for i in inFlight.indices where !inFlight[i].done {
      var flag: Int32 = 0
      try check(MPI_Test(&inFlight[i].request, &flag, lck_mpi_status_ignore()), "MPI_Test")
      if flag != 0 { finish(i) }
    }
  }

  /// Waits for every started sum (`MPI_Wait`, in the order they started) and adds it up.
  public func completeSums() throws {
    defer {
      for pending in inFlight { spareGathers.append(pending.gathered) }
      inFlight.removeAll(keepingCapacity: true)
    }
    for i in inFlight.indices where !inFlight[i].done {
      try check(MPI_Wait(&inFlight[i].request, lck_mpi_status_ignore()), "MPI_Wait")
      finish(i)
    }
  }

  private func finish(_ i: Int) {
    let pending = inFlight[i]
    addInRankOrder(
      UnsafeMutableBufferPointer(rebasing: pending.gathered[0..<pending.buffer.count * size]),
      into: pending.buffer)
    inFlight[i].done = true
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
    for gathered in spareGathers { gathered.deallocate() }
    spareGathers.removeAll()
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
