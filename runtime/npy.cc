// .npy parsing: magic, version, the Python-dict header, then raw little-endian data.
#include "runtime/npy.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string_view>

namespace dsc {
namespace {

struct NpyType {
  const char* descr;
  DType dtype;
};
constexpr NpyType kTypes[] = {{"<f4", DType::kFloat32}, {"<f2", DType::kFloat16}, {"<f8", DType::kFloat64},
                              {"<i8", DType::kInt64},   {"<i4", DType::kInt32},   {"|b1", DType::kBool},
                              {"|u1", DType::kUInt8},   {"|i1", DType::kInt8}};

// The text after `'key'` and a colon in the header dict, or npos. Hand-parsed: the header comes from
// the file, and std::regex recurses per character, so a long header could exhaust the stack.
size_t ValueOf(std::string_view header, std::string_view key) {
  std::string quoted(1, '\'');
  quoted.append(key);
  quoted += '\'';
  const size_t at = header.find(quoted);
  if (at == std::string_view::npos) return std::string_view::npos;
  size_t i = header.find_first_not_of(" \t", at + quoted.size());
  if (i == std::string_view::npos || header[i] != ':') return std::string_view::npos;
  return header.find_first_not_of(" \t", i + 1);
}

// The text between `open` at `at` and the next `close`, or nullopt.
std::optional<std::string> Between(std::string_view header, size_t at, char open, char close) {
  if (at == std::string_view::npos || at >= header.size() || header[at] != open) return std::nullopt;
  const size_t end = header.find(close, at + 1);
  if (end == std::string_view::npos) return std::nullopt;
  return std::string(header.substr(at + 1, end - at - 1));
}

}  // namespace

StatusOr<Tensor> ReadNpy(const std::string& path) {
  // A FIFO or device would block or never end; only regular files are data.
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status))
    return NotFound(path, ": cannot open: ", ec ? ec.message() : "no such file");
  if (!std::filesystem::is_regular_file(status)) return InvalidArgument(path, ": not a regular file");
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path, ": cannot open: ", std::strerror(errno ? errno : EIO));
  return ReadNpyStream(in, path);
}

StatusOr<Tensor> ParseNpy(const std::string& bytes, const std::string& name) {
  std::istringstream in(bytes, std::ios::binary);
  return ReadNpyStream(in, name);
}

StatusOr<Tensor> ReadNpyStream(std::istream& in, const std::string& path) {
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) return DataLoss(path, ": not a .npy file");
  const int major = static_cast<unsigned char>(magic[6]);
  uint32_t header_len = 0;
  if (major == 1) {
    unsigned char b[2];
    if (!in.read(reinterpret_cast<char*>(b), 2)) return DataLoss(path, ": truncated header");
    header_len = b[0] | (b[1] << 8);
  } else if (major == 2 || major == 3) {
    unsigned char b[4];
    if (!in.read(reinterpret_cast<char*>(b), 4)) return DataLoss(path, ": truncated header");
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  } else {
    return Unimplemented(path, ": .npy format version ", major, " is not supported");
  }
  if (header_len > (1u << 20)) return DataLoss(path, ": header length ", header_len, " is implausible");
  std::string header(header_len, '\0');
  if (!in.read(header.data(), header_len)) return DataLoss(path, ": truncated header");
  const std::optional<std::string> descr = Between(header, ValueOf(header, "descr"), '\'', '\'');
  if (!descr) return DataLoss(path, ": header has no descr");
  const size_t order = ValueOf(header, "fortran_order");
  const std::string_view hv(header);
  if (order != std::string_view::npos && hv.substr(order, 4) == "True")
    return Unimplemented(path, ": Fortran-ordered arrays are not supported (save with np.ascontiguousarray)");
  if (order == std::string_view::npos || hv.substr(order, 5) != "False") return DataLoss(path, ": header has no fortran_order");
  const std::optional<std::string> shape = Between(header, ValueOf(header, "shape"), '(', ')');
  if (!shape) return DataLoss(path, ": header has no shape");
  std::vector<int64_t> dims;
  std::stringstream ss(*shape);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \tL") + 1);
    if (item.empty()) continue;
    try {
      size_t used = 0;
      long long d = std::stoll(item, &used);
      if (used != item.size() || d < 0) throw std::invalid_argument(item);
      dims.push_back(d);
    } catch (const std::exception&) {
      return DataLoss(path, ": bad dimension '", item, "' in shape");
    }
  }
  const NpyType* type = nullptr;
  for (const auto& t : kTypes)
    if (*descr == t.descr) type = &t;
  if (!type) return Unimplemented(path, ": dtype '", *descr, "' is not supported (float32, float16, float64, int64, int32, bool, uint8, int8 are)");
  StatusOr<int64_t> count = NumElements(dims);
  if (!count.ok()) return DataLoss(path, ": ", count.status().message());
  const std::streampos data_start = in.tellg();
  in.seekg(0, std::ios::end);
  const int64_t available = static_cast<int64_t>(in.tellg() - data_start);
  int64_t need = 0;
  if (__builtin_mul_overflow(*count, static_cast<int64_t>(DTypeSize(type->dtype)), &need))
    return DataLoss(path, ": its shape holds ", *count, " elements of ", DTypeName(type->dtype), ", more bytes than int64 counts");
  if (available < need) return DataLoss(path, ": holds ", available, " data bytes, its shape needs ", need);
  Tensor t(type->dtype, dims);
  in.seekg(data_start);
  if (need && !in.read(reinterpret_cast<char*>(t.raw()), need)) return DataLoss(path, ": short read");
  return t;
}

Status WriteNpy(const std::string& path, const Tensor& t) {
  const char* descr = nullptr;
  for (const auto& k : kTypes)
    if (k.dtype == t.dtype()) descr = k.descr;
  if (!descr) return Unimplemented("cannot write ", DTypeName(t.dtype()), " to .npy");
  std::string shape;
  for (int64_t d : t.dims()) shape += std::to_string(d) + ",";
  if (t.rank() > 1) shape.pop_back();
  std::string header = StrCat("{'descr': '", descr, "', 'fortran_order': False, 'shape': (", shape, "), }");
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  const char lb[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  out.write(lb, 2);
  out << header;
  out.write(reinterpret_cast<const char*>(t.raw()), static_cast<std::streamsize>(t.nbytes()));
  if (!out) return InvalidArgument("cannot write ", path);
  return Status::OK();
}

}  // namespace dsc
