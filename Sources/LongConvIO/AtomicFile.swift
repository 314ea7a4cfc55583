import Foundation

/// Durable, all-or-nothing file writes: the one place the toolkit writes files that users
/// keep (safetensors, configs, reports, checkpoints).
public enum AtomicFile {
  /// Writes through `body` into a temporary file beside `url`, syncs it and renames it over
  /// `url`; on any failure the temporary file is removed and `url` is untouched.
  public static func write(
    to url: URL, _ body: (_ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Void
  ) throws {
    let file = url.path
    let directory = url.deletingLastPathComponent()
    let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).tmp-\(UUID().uuidString)")
    func posixError(_ what: String) -> TensorFileError {
      TensorFileError(file: file, problem: "\(what) (\(String(cString: strerror(errno))))")
    }
    let fd = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
    guard fd >= 0 else { throw posixError("cannot create a temporary file in \(directory.path)") }
    var closed = false
    var renamed = false
    defer {
      if !closed { close(fd) }
      if !renamed { unlink(temporary.path) }
    }
    try body { bytes in
      var done = 0
      while done < bytes.count {
        let n = posixWrite(fd, bytes.baseAddress! + done, bytes.count - done)
        if n < 0 {
          if errno == EINTR { continue }
          throw posixError("cannot write")
        }
        done += n
      }
    }
    guard fsync(fd) == 0 else { throw posixError("cannot sync") }
    closed = true
    guard close(fd) == 0 else { throw posixError("cannot close") }
    guard rename(temporary.path, file) == 0 else {
      throw posixError("cannot rename the temporary file into place")
    }
    renamed = true
    syncDirectory(directory)
  }

  /// Best-effort fsync of a directory, so a rename in it is durable.
  public static func syncDirectory(_ directory: URL) {
    let fd = open(directory.path, O_RDONLY)
    if fd >= 0 {
      _ = fsync(fd)
      close(fd)
    }
  }
}

private func posixWrite(_ fd: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
  #if canImport(Glibc)
    Glibc.write(fd, pointer, count)
  #else
    Darwin.write(fd, pointer, count)
  #endif
}
