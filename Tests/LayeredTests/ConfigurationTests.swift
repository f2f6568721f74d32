import Foundation
import Synchronization
import Testing
@testable import Layered

@Suite struct ConfigurationTests {
    @Test func defaultsAreTheCLibrarys() {
        let configuration = Configuration()
        #expect(configuration.role == .follower)
        #expect(configuration.sharedDirectory == nil)
        #expect(configuration.drainThreads == 2)
        #expect(configuration.drainPolicy == .skipMissing)
        #expect(configuration.syncLevel == .write)
        #expect(configuration.failpoints.isEmpty)
        #expect(configuration.createIfMissing)
        #expect(configuration.messageHandler == nil)
        #expect(configuration.offloadIdle == nil)
        #expect(configuration.maintenanceInterval == .seconds(1))
        #expect(configuration.offloadIdleMilliseconds == 0)
        #expect(configuration.maintenanceIntervalMilliseconds == 1000)
    }

    @Test func lifecycleDurationsBecomeWholeMilliseconds() {
        var configuration = Configuration(offloadIdle: .milliseconds(250), maintenanceInterval: .seconds(2))
        #expect(configuration.offloadIdleMilliseconds == 250)
        #expect(configuration.maintenanceIntervalMilliseconds == 2000)
        // Rounded up, and never 0 (which C reads as "off" or "the default").
        configuration.offloadIdle = .zero
        #expect(configuration.offloadIdleMilliseconds == 1)
        configuration.offloadIdle = .microseconds(1500)
        #expect(configuration.offloadIdleMilliseconds == 2)
        configuration.maintenanceInterval = .nanoseconds(1)
        #expect(configuration.maintenanceIntervalMilliseconds == 1)
        // Out of range.
        configuration.offloadIdle = .milliseconds(-1)
        #expect(configuration.offloadIdleMilliseconds == nil)
        configuration.offloadIdle = .milliseconds(Int64(Int32.max) + 1)
        #expect(configuration.offloadIdleMilliseconds == nil)
        configuration.maintenanceInterval = .zero
        #expect(configuration.maintenanceIntervalMilliseconds == nil)
        configuration.maintenanceInterval = .seconds(-1)
        #expect(configuration.maintenanceIntervalMilliseconds == nil)
        configuration.maintenanceInterval = .seconds(Int64.max)
        #expect(configuration.maintenanceIntervalMilliseconds == nil)
    }

    @Test(arguments: [
        Configuration(offloadIdle: .seconds(-1)),
        Configuration(offloadIdle: .seconds(3_000_000)),
        Configuration(offloadIdle: .seconds(1), maintenanceInterval: .zero),
        Configuration(maintenanceInterval: .milliseconds(-5)),
    ])
    func lifecycleDurationsOutOfRangeAreEINVAL(configuration: Configuration) async throws {
        await withTemporaryDirectory { directory in
            #expect(throws: LayeredError.EINVAL) {
                try Database(url: directory.appendingPathComponent("home"), configuration: configuration)
            }
        }
    }

    @Test func failpointsBecomeTheCList() {
        var configuration = Configuration()
        #expect(configuration.failpointList == "")
        configuration.failpoints = ["fs.write": "return(EIO)", "drain.copy": "pause"]
        #expect(configuration.failpointList == "drain.copy=pause;fs.write=return(EIO)")
        configuration.failpoints = ["a;b": "pause"]
        #expect(configuration.failpointList == nil)
        configuration.failpoints = ["a=b": "pause"]
        #expect(configuration.failpointList == nil)
        configuration.failpoints = ["fs.write": "off;x"]
        #expect(configuration.failpointList == nil)
    }

    @Test(arguments: [0, -1, 65, Int(Int32.max) + 1])
    func drainThreadsOutOfRangeIsEINVAL(threads: Int) async throws {
        await withTemporaryDirectory { directory in
            #expect(throws: LayeredError.EINVAL) {
                try Database(url: directory.appendingPathComponent("home"),
                             configuration: Configuration(drainThreads: threads))
            }
        }
    }

    @Test func unreadableFailpointsAreEINVAL() async throws {
        await withTemporaryDirectory { directory in
            let home = directory.appendingPathComponent("home")
            #expect(throws: LayeredError.EINVAL) {
                try Database(url: home, configuration: Configuration(failpoints: ["a;b": "off"]))
            }
            #expect(throws: LayeredError.EINVAL) {
                try Database(url: home, configuration: Configuration(failpoints: ["fs.write": "explode"]))
            }
        }
    }

    @Test func everyPolicyAndSyncLevelOpens() async throws {
        for policy in DrainPolicy.allCases {
            for sync in SyncLevel.allCases {
                try await withDatabase(Configuration(drainPolicy: policy, syncLevel: sync)) { database, _ in
                    let table = try database.createTable("t")
                    try table.put("k", "v")
                    #expect(try table.get("k", as: String.self) == "v")
                }
            }
        }
    }

    @Test func sharedDirectoryHoldsTheStableConstituents() async throws {
        try await withTemporaryDirectory { directory in
            let home = directory.appendingPathComponent("home")
            let shared = directory.appendingPathComponent("store")
            let database = try Database(
                url: home, configuration: Configuration(sharedDirectory: shared.path))
            try database.createTable("orders")
            try database.close()
            #expect(FileManager.default.fileExists(atPath: shared.appendingPathComponent("orders.stable").path))
            #expect(FileManager.default.fileExists(atPath: home.appendingPathComponent("orders.ingest").path))
        }
    }

    @Test func emptySharedDirectoryIsEINVAL() async throws {
        await withTemporaryDirectory { directory in
            #expect(throws: LayeredError.EINVAL) {
                try Database(url: directory.appendingPathComponent("home"),
                             configuration: Configuration(sharedDirectory: ""))
            }
        }
    }

    @Test func messageHandlerReceivesTheLibrarysMessages() async throws {
        try await withDatabase { _, home in
            let messages = Messages()
            #expect(throws: LayeredError.EBUSY) {
                try Database(url: home, configuration: Configuration(messageHandler: { messages.append($0) }))
            }
            #expect(messages.all.contains { $0.contains("open elsewhere") })
        }
    }
}

final class Messages: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}
