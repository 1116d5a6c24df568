import FuzzSupport
@testable import QuantaButler

/// `status-cache.bin`: a cache belongs to the snapshot identity and job count it names (status
/// passes the real ones), so they are taken from the input to get past that check; the job count
/// is capped, since status allocates one entry per job of its own snapshot, not of the file.
@main enum FuzzStatusCache {
    static func main() {
        fuzz { raw in
            func u64(_ at: Int) -> UInt64 { raw.count >= at + 8 ? UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self)) : 0 }
            let snapshot = ManifestCache.Identity(inode: u64(8), size: u64(16), mtimeNS: u64(24), ctimeNS: u64(32))
            var r = ManifestCache.Reader(bytes: raw)
            _ = try? r.cache(snapshot: snapshot, jobs: Int(min(u64(40), 4096)))
        }
    }
}
