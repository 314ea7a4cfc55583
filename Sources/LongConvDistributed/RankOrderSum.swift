import CMPI

/// One nonblocking, deterministic sum of a Float buffer over the processes of a communicator,
/// in two phases with the traffic of a ring allreduce (each process sends and receives about
/// `2 (N - 1) / N` times the buffer):
///
/// 1. reduce-scatter: the buffer is cut into `N` nearly equal chunks; process `r` receives
///    chunk `r` of every process (`MPI_Ialltoallv`) and adds them in rank order in Double;
/// 2. allgather: every process receives every summed chunk (`MPI_Iallgatherv`, in place).
///
/// Each scalar is added by one process in rank order, so the result has the same bits on
/// every process and in every run, whatever algorithms MPI picks.
///
/// MPI requires every process to start the collectives of a communicator in the same order.
/// Phase 2 starts whenever phase 1 happens to finish, which differs between processes, so the
/// two phases run on two communicators (`comm` and `gatherComm`), and each phase of a series
/// of sums must start in the series' order: ``MPIWorld`` advances its sums in order and stops
/// at the first one still in phase 1.
final class RankOrderSum {
  let buffer: UnsafeMutableBufferPointer<Float>
  private let comm: MPI_Comm
  private let gatherComm: MPI_Comm
  private let rank: Int
  private let size: Int
  /// Chunk `r` is `starts[r] ..< starts[r] + counts[r]`.
  private let counts: UnsafeMutableBufferPointer<Int32>
  private let starts: UnsafeMutableBufferPointer<Int32>
  /// This process's chunk of every process, by rank, and where each begins.
  private let received: UnsafeMutableBufferPointer<Float>
  private let receivedCounts: UnsafeMutableBufferPointer<Int32>
  private let receivedStarts: UnsafeMutableBufferPointer<Int32>
  private var request: MPI_Request? = lck_mpi_request_null()
  private var phase = 1
  /// Whether the sum is in `buffer`.
  var isDone: Bool { phase == 3 }
  /// Whether the reduce-scatter is still under way (the allgather not started).
  var isScattering: Bool { phase == 1 }

  /// Starts the sum of `buffer` (which must stay valid and untouched until ``isDone``):
  /// the reduce-scatter on `comm`; the allgather will run on `gatherComm`.
  init(
    _ buffer: UnsafeMutableBufferPointer<Float>, comm: MPI_Comm, gatherComm: MPI_Comm, rank: Int, size: Int
  ) throws(MPIError) {
    precondition(buffer.count <= Int(Int32.max), "RankOrderSum: \(buffer.count) scalars in one call")
    (self.buffer, self.comm, self.gatherComm, self.rank, self.size) = (buffer, comm, gatherComm, rank, size)
    let n = buffer.count
    counts = .allocate(capacity: size)
    starts = .allocate(capacity: size)
    for r in 0..<size {
      starts[r] = Int32(n * r / size)
      counts[r] = Int32(n * (r + 1) / size - n * r / size)
    }
    let mine = Int(counts[rank])
    received = .allocate(capacity: max(1, mine * size))
    receivedCounts = .allocate(capacity: size)
    receivedStarts = .allocate(capacity: size)
    for r in 0..<size {
      receivedCounts[r] = Int32(mine)
      receivedStarts[r] = Int32(mine * r)
    }
    try check(
      MPI_Ialltoallv(
        buffer.baseAddress, counts.baseAddress, starts.baseAddress, lck_mpi_float(), received.baseAddress,
        receivedCounts.baseAddress, receivedStarts.baseAddress, lck_mpi_float(), comm, &request),
      "MPI_Ialltoallv")
  }

  deinit {
    for pointer in [counts, starts, receivedCounts, receivedStarts] { pointer.deallocate() }
    received.deallocate()
  }

  /// Moves the sum on without waiting (`MPI_Test`); true when it is done.
  @discardableResult
  func progress() throws(MPIError) -> Bool {
    while !isDone {
      var flag: Int32 = 0
      try check(MPI_Test(&request, &flag, lck_mpi_status_ignore()), "MPI_Test")
      guard flag != 0 else { return false }
      try nextPhase()
    }
    return true
  }

  /// Waits until the sum is in `buffer`.
  func wait() throws(MPIError) {
    while !isDone {
      try check(MPI_Wait(&request, lck_mpi_status_ignore()), "MPI_Wait")
      try nextPhase()
    }
  }

  /// After the reduce-scatter: adds this process's chunk and starts the allgather.
  private func nextPhase() throws(MPIError) {
    guard phase == 1 else {
      phase = 3
      return
    }
    let (start, count) = (Int(starts[rank]), Int(counts[rank]))
    for i in 0..<count {
      var total = 0.0
      for r in 0..<size { total += Double(received[r * count + i]) }
      buffer[start + i] = Float(total)
    }
    phase = 2
    try check(
      MPI_Iallgatherv(
        lck_mpi_in_place(), 0, lck_mpi_float(), buffer.baseAddress, counts.baseAddress, starts.baseAddress,
        lck_mpi_float(), gatherComm, &request),
      "MPI_Iallgatherv")
  }

  private func check(_ code: Int32, _ call: String) throws(MPIError) {
    guard code == MPI_SUCCESS else { throw MPIError(rank: rank, call: call, code: code) }
  }
}
