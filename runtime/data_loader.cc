// Data loading: validation against the program's inputs, epoch orders, micro-batch gathering.
#include "runtime/data_loader.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>

#include "runtime/npy.h"

namespace dsc {
namespace {

// The shape of one sample (from = 1) or of the whole array (from = 0).
std::string DimsString(const std::vector<int64_t>& dims, size_t from) {
  return DimsToString({dims.begin() + static_cast<std::ptrdiff_t>(std::min(from, dims.size())), dims.end()});
}

// Widening conversions that lose nothing; and float data for a bfloat16 input, which numpy cannot
// hold (ml_dtypes' arrays save as raw '<V2', which names no type), rounded to nearest even as
// torch's .to(torch.bfloat16) rounds: `*rounded` says so. Anything else is the user's call (astype).
StatusOr<Tensor> ConvertForInput(Tensor t, DType want, const std::string& path, bool* rounded) {
  if (t.dtype() == want) return t;
  const bool to_bf16 = want == DType::kBFloat16 && IsFloat(t.dtype());
  bool ok = to_bf16 || (t.dtype() == DType::kInt32 && want == DType::kInt64) ||
            (t.dtype() == DType::kFloat16 && want == DType::kFloat32);
  if (!ok)
    return InvalidArgument(path, ": holds ", DTypeName(t.dtype()), " data but the model input is ", DTypeName(want),
                           " (convert with numpy's .astype)");
  *rounded = to_bf16;
  Tensor out(want, t.dims());
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (want == DType::kInt64) out.SetFromInt(i, t.GetAsInt(i));
    else out.SetFromDouble(i, t.GetAsDouble(i));
  }
  return out;
}

}  // namespace

StatusOr<DataLoader> DataLoader::Open(const std::string& dir, const std::vector<DataInput>& inputs,
                                      const DataLoaderOptions& opts) {
  DataLoader dl;
  dl.opts_ = opts;
  dl.inputs_ = inputs;
  if (opts.train_batch_size != opts.micro_batch * opts.gradient_accumulation_steps * opts.world_size)
    return Internal("train_batch_size ", opts.train_batch_size, " != micro ", opts.micro_batch, " x gas ",
                    opts.gradient_accumulation_steps, " x world ", opts.world_size);
  // error_code overloads throughout: symlink loops, over-long names and permissions are the user's
  // data problems to report, not filesystem_error exceptions.
  std::error_code ec;
  const std::filesystem::file_status dir_status = std::filesystem::status(dir, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) return InvalidArgument("--data ", dir, ": ", ec.message());
  if (!std::filesystem::exists(dir_status)) return NotFound("--data ", dir, ": no such directory");
  if (!std::filesystem::is_directory(dir_status)) return InvalidArgument("--data ", dir, ": not a directory");
  std::string first;
  for (const DataInput& in : inputs) {
    const std::string path = (std::filesystem::path(dir) / (in.name + ".npy")).string();
    if (in.dims.empty() || in.dims[0] != opts.micro_batch)
      return Internal("the model input '", in.name, "' is ", DTypeName(in.dtype), DimsString(in.dims, 0),
                      ", not batched by the micro-batch size ", opts.micro_batch);
    const bool exists = std::filesystem::exists(std::filesystem::status(path, ec));
    if (ec && ec != std::errc::no_such_file_or_directory) return InvalidArgument(path, ": ", ec.message());
    if (!exists)
      return NotFound(path, ": missing: the model input '", in.name, "' needs ", DTypeName(in.dtype),
                      DimsString(in.dims, 0), " per micro-batch (one NAME.npy per input, dim 0 = samples)");
    ASSIGN_OR_RETURN(Tensor t, ReadNpy(path));
    bool rounded = false;
    const DType given = t.dtype();
    ASSIGN_OR_RETURN(t, ConvertForInput(std::move(t), in.dtype, path, &rounded));
    if (rounded)
      dl.notes_.push_back(StrCat(path, ": ", DTypeName(given), " data rounded to the model input's bfloat16 (to "
                                 "nearest even, as torch's .to(torch.bfloat16))"));
    if (t.rank() != static_cast<int64_t>(in.dims.size()) ||
        !std::equal(in.dims.begin() + 1, in.dims.end(), t.dims().begin() + 1))
      return InvalidArgument(path, ": samples have shape ", DimsString(t.dims(), 1), " but the model input '", in.name,
                             "' takes ", DimsString(in.dims, 1));
    const int64_t n = t.dims().empty() ? 0 : t.dims()[0];
    if (first.empty()) {
      dl.num_samples_ = n;
      first = path;
    } else if (n != dl.num_samples_) {
      return InvalidArgument(path, ": holds ", n, " samples but ", first, " holds ", dl.num_samples_);
    }
    dl.data_.emplace(in.name, std::move(t));
  }
  if (dl.num_samples_ < opts.train_batch_size)
    return InvalidArgument(dir, ": holds ", dl.num_samples_, " samples, fewer than one batch (train_batch_size ",
                           opts.train_batch_size, ")");
  return dl;
}

const std::vector<int64_t>& DataLoader::Order(int64_t epoch) {
  if (epoch == order_epoch_) return order_;
  order_.resize(static_cast<size_t>(num_samples_));
  for (int64_t i = 0; i < num_samples_; ++i) order_[static_cast<size_t>(i)] = i;
  if (opts_.shuffle) {
    // Our own Fisher-Yates over mt19937_64 so the order is the same with every standard library.
    std::mt19937_64 rng(opts_.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch));
    for (int64_t i = num_samples_ - 1; i > 0; --i) {
      const uint64_t bound = static_cast<uint64_t>(i) + 1;
      const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
      uint64_t r;
      do r = rng(); while (r >= limit);
      std::swap(order_[static_cast<size_t>(i)], order_[static_cast<size_t>(r % bound)]);
    }
  }
  order_epoch_ = epoch;
  return order_;
}

Status DataLoader::Fill(int64_t step, int64_t micro, std::map<std::string, Tensor>* out) {
  const int64_t spe = steps_per_epoch();
  const std::vector<int64_t>& order = Order(step / spe);
  const int64_t batch_start = (step % spe) * opts_.train_batch_size;
  const int64_t first = batch_start + first_sample(micro);
  for (const DataInput& in : inputs_) {
    const Tensor& src = data_.at(in.name);
    auto it = out->find(in.name);
    if (it == out->end()) it = out->emplace(in.name, Tensor(in.dtype, in.dims)).first;
    const size_t sample_bytes = src.nbytes() / static_cast<size_t>(num_samples_);
    for (int64_t i = 0; i < opts_.micro_batch; ++i) {
      const int64_t s = order[static_cast<size_t>(first + i)];
      std::memcpy(it->second.raw() + static_cast<size_t>(i) * sample_bytes,
                  src.raw() + static_cast<size_t>(s) * sample_bytes, sample_bytes);
    }
  }
  return Status::OK();
}

}  // namespace dsc
