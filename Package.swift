// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Layered",
    products: [
        .library(name: "Layered", targets: ["Layered"]),
        // The command-line tool.  Its module is LayeredTool: a module named
        // "layered" would clash with Layered on case-insensitive file systems.
        .executable(name: "layered", targets: ["LayeredTool"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // 1.16: LogEvent, which the tests' log handler receives.
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        // 2.13: the metric initialisers that take a factory, which MetricsReporter uses so that a
        // reporter can publish to a factory other than the bootstrapped one.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        // `swift package generate-documentation` for the DocC catalog in Sources/Layered.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        // The C core: sources in CLayered/, the public header in include/.
        // Everything else at the root (CMake files, C tests, examples,
        // scripts, the Swift targets) belongs to other builds or targets.
        .target(
            name: "CLayered",
            path: ".",
            exclude: [
                "CMakeLists.txt",
                "Makefile",
                "layered.pc.in",
                "bench",
                "examples",
                "scripts",
                "Sources",
                "Tests",
            ],
            sources: ["CLayered"],
            publicHeadersPath: "include",
            cSettings: [.define("_GNU_SOURCE")],
            linkerSettings: [
                .linkedLibrary("urcu-memb"),
                .linkedLibrary("urcu-cds"),
                .linkedLibrary("urcu-common"),
                .linkedLibrary("bsd"),
                .linkedLibrary("pthread"),
            ]
        ),
        .target(
            name: "Layered",
            dependencies: [
                "CLayered",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            path: "Sources/Layered"
        ),
        .executableTarget(
            name: "layered-stress",
            dependencies: [
                "Layered",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/layered-stress"
        ),
        .executableTarget(
            name: "LayeredTool",
            dependencies: [
                "Layered",
                // layered_verify and layered_salvage_scan, which need no
                // connection and so have no place in the Swift layer's types.
                "CLayered",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/layered"
        ),
        .testTarget(
            name: "LayeredTests",
            dependencies: [
                "Layered",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            path: "Tests/LayeredTests"
        ),
    ]
)
