import Foundation

/// A value that Layered stores as a key or value: a string of bytes.
///
/// Keys sort by their bytes (`memcmp` order, the shorter first on a tie).  `[UInt8]`,
/// `ArraySlice<UInt8>`, `Data`, and `String`/`Substring` (as UTF-8) conform; conform your own
/// types to store them directly.
public protocol ByteString {
    /// Calls `body` with the bytes of this value; the buffer is valid only during the call.
    func withByteStringBytes<Result>(
        _ body: (UnsafeRawBufferPointer) throws -> Result
    ) rethrows -> Result

    /// Creates a value from bytes read from the database.
    init(byteStringBytes bytes: UnsafeRawBufferPointer)
}

extension Array: ByteString where Element == UInt8 {
    /// Calls `body` with the array's bytes.
    public func withByteStringBytes<Result>(
        _ body: (UnsafeRawBufferPointer) throws -> Result
    ) rethrows -> Result {
        try withUnsafeBytes(body)
    }

    /// Creates an array holding a copy of `bytes`.
    public init(byteStringBytes bytes: UnsafeRawBufferPointer) {
        self.init(bytes)
    }
}

extension ArraySlice: ByteString where Element == UInt8 {
    /// Calls `body` with the slice's bytes.
    public func withByteStringBytes<Result>(
        _ body: (UnsafeRawBufferPointer) throws -> Result
    ) rethrows -> Result {
        try withUnsafeBytes(body)
    }

    /// Creates a slice holding a copy of `bytes`.
    public init(byteStringBytes bytes: UnsafeRawBufferPointer) {
        self.init(bytes)
    }
}

extension Data: ByteString {
    /// Calls `body` with the data's bytes.
    public func withByteStringBytes<Result>(
        _ body: (UnsafeRawBufferPointer) throws -> Result
    ) rethrows -> Result {
        try withUnsafeBytes(body)
    }

    /// Creates data holding a copy of `bytes`.
    public init(byteStringBytes bytes: UnsafeRawBufferPointer) {
        self.init(bytes)
    }
}

extension String: ByteString {
    /// Calls `body` with the string's UTF-8 bytes (without a terminating NUL).
    public func withByteStringBytes<Result>(
        _ body: (UnsafeRawBufferPointer) throws -> Result
    ) rethrows -> Result {
        var copy = self
        return try copy.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
    }

    /// Creates a string by decoding `bytes` as UTF-8; invalid sequences become U+FFFD.
    public init(byteStringBytes bytes: UnsafeRawBufferPointer) {
        self.init(decoding: bytes, as: UTF8.self)
    }
}

extension Substring: ByteString {
    /// Calls `body` with the substring's UTF-8 bytes.
    public func withByteStringBytes<Result>(
        _ body: (UnsafeRawBufferPointer) throws -> Result
    ) rethrows -> Result {
        var copy = self
        return try copy.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
    }

    /// Creates a substring by decoding `bytes` as UTF-8; invalid sequences become U+FFFD.
    public init(byteStringBytes bytes: UnsafeRawBufferPointer) {
        self.init(String(decoding: bytes, as: UTF8.self))
    }
}

extension ByteString {
    /// The bytes of this value as an array.
    var byteArray: [UInt8] {
        withByteStringBytes { [UInt8]($0) }
    }
}
