// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Layered",
    products: [
        .library(name: "Layered", targets: ["Layered"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
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
            dependencies: ["CLayered"],
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
        .testTarget(
            name: "LayeredTests",
            dependencies: ["Layered"],
            path: "Tests/LayeredTests"
        ),
    ]
)
