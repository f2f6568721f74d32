import Foundation
import Layered
import Testing

/// Runs `body` with a new, empty directory that is removed afterwards.  The database home is a
/// directory inside it, so tests can also see what happens when the home is missing.
@discardableResult
func withTemporaryDirectory<Result>(_ body: (URL) async throws -> Result) async rethrows -> Result {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("layered-tests-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    return try await body(directory)
}

/// Runs `body` with a database opened in a fresh temporary home, closed afterwards.
@discardableResult
func withDatabase<Result>(
    _ configuration: Configuration = Configuration(),
    _ body: (Database, URL) async throws -> Result
) async throws -> Result {
    try await withTemporaryDirectory { directory in
        let home = directory.appendingPathComponent("home")
        let database = try Database(url: home, configuration: configuration)
        do {
            let result = try await body(database, home)
            try? database.close()
            return result
        } catch {
            try? database.close()
            throw error
        }
    }
}

func bytes(_ string: String) -> [UInt8] { Array(string.utf8) }

/// Keys and values of an iteration, as strings.
func strings(_ entries: some Sequence<(key: [UInt8], value: [UInt8])>) -> [String: String] {
    var result: [String: String] = [:]
    for (key, value) in entries {
        result[String(decoding: key, as: UTF8.self)] = String(decoding: value, as: UTF8.self)
    }
    return result
}

/// The sum of the sizes of the `*.stable` files in a database's shared directory (`<home>/shared`,
/// the default), as the file system reports them: what ``Statistics/databaseSize`` must count
/// after a checkpoint, computed without the database.
func stableFilesBytes(home: URL) throws -> UInt64 {
    let shared = home.appendingPathComponent("shared")
    var total: UInt64 = 0
    for name in try FileManager.default.contentsOfDirectory(atPath: shared.path)
    where name.hasSuffix(".stable") && name != ".stable" {
        let attributes = try FileManager.default.attributesOfItem(
            atPath: shared.appendingPathComponent(name).path)
        #expect(attributes[.type] as? FileAttributeType == .typeRegular)
        total += try #require((attributes[.size] as? NSNumber)?.uint64Value)
    }
    return total
}

/// The first element of a stream, or `nil` if none comes within `timeout`.
func firstElement<Element: Sendable>(
    of stream: AsyncStream<Element>, timeout: Duration
) async -> Element? {
    await withTaskGroup(of: Element?.self) { group in
        group.addTask {
            var iterator = stream.makeAsyncIterator()
            return await iterator.next()
        }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
}
