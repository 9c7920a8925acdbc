#pragma once
// A `docker save` archive without the layers the target already has. `docker load` reads a layer
// file only when the target lacks its chain (moby/moby@v20.10.24:image/tarexport/load.go: it
// asks the layer store for the chain id first), so an archive may leave those files out: a
// rebuilt image whose base the target has sends its new layers only. The archive is docker
// save's legacy tar (manifest.json, <config>.json, <v1 id>/layer.tar); its order is by name, so
// manifest.json comes after the layers, and the archive is read from a file, not a pipe.

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <labctl/core/fd.hpp>

namespace labctl::deploy {

/// The chain ids (OCI image-spec config.md, "ChainID") of every prefix of each list of diff ids:
/// ChainID(L0) = DiffID(L0), ChainID(L0..Ln) = "sha256:" + SHA-256(ChainID(L0..Ln-1) + " " +
/// DiffID(Ln)) (pure).
std::set<std::string> chain_ids(const std::vector<std::vector<std::string>>& diff_id_lists);

/// The layer chains an engine holds, from `docker image inspect` of its images printing each
/// image's diff ids on a line, space-separated (pure).
std::set<std::string> parse_engine_chains(const std::string& out);

/// A docker save archive, read as the same archive without some layer files.
class SavedArchive {
public:
    /// Indexes `path`: every tar entry, manifest.json and each image config's diff ids. Throws
    /// Error(deploy) when it is not a docker save archive.
    explicit SavedArchive(const std::string& path);

    /// Leaves out the layer files whose chain is in `present`; returns how many.
    std::size_t omit_layers(const std::set<std::string>& present);

    std::uint64_t size() const;    ///< bytes read() gives in all
    std::uint64_t omitted() const; ///< bytes left out
    /// The next bytes of the filtered archive into `buf` (at most `len`); 0 at its end.
    std::size_t read(char* buf, std::size_t len);

private:
    struct Segment {
        std::uint64_t offset = 0, length = 0; ///< headers (extensions included), data, padding
        std::uint64_t data_offset = 0, data_size = 0; ///< the entry's own data
        std::string name; ///< the entry's path ("" for the archive's end)
        bool keep = true;
    };
    std::string m_path;
    Fd m_fd;
    std::vector<Segment> m_segments;
    std::vector<std::pair<std::string, std::string>> m_layer_chains; ///< layer path, chain id
    std::size_t m_at = 0;                                            ///< segment being read
    std::uint64_t m_in_segment = 0;                                  ///< bytes of it already read
};

} // namespace labctl::deploy
