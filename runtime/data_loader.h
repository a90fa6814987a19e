// The training data loader: one NAME.npy per graph input (dim 0 = samples), batches in a fixed
// or seeded-shuffled order per epoch, split into micro-batches and ranks.
//
// A step consumes train_batch_size samples. Its micro-batch m on rank r (of W) holds the batch's
// samples [(m*W + r) * micro, (m*W + r + 1) * micro), so the samples of a step do not depend on
// how the batch is split. Epochs have floor(N / train_batch_size) steps.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/tensor.h"

namespace dsc {

struct DataInput {
  std::string name;
  DType dtype;
  std::vector<int64_t> dims;  // of one micro-batch: dims[0] is the micro batch size
};

struct DataLoaderOptions {
  int64_t train_batch_size = 0;
  int64_t micro_batch = 0;
  int64_t gradient_accumulation_steps = 1;
  bool shuffle = true;
  uint64_t seed = 0;
  int rank = 0;
  int world_size = 1;
};

class DataLoader {
 public:
  // Every input needs DIR/NAME.npy with the input's trailing shape and dtype (int32 data for an
  // int64 input and float16 data for a float32 input are widened, float data for a bfloat16 input
  // is rounded, with a note); errors name the file.
  static StatusOr<DataLoader> Open(const std::string& dir, const std::vector<DataInput>& inputs,
                                   const DataLoaderOptions& opts);
  const std::vector<DataInput>& inputs() const { return inputs_; }
  int64_t num_samples() const { return num_samples_; }
  int64_t steps_per_epoch() const { return num_samples_ / opts_.train_batch_size; }
  // What Open did to the data that the user should hear of (one line each, no prefix).
  const std::vector<std::string>& notes() const { return notes_; }
  // Writes micro-batch `micro` of optimizer step `step` (0-based) into `out` (one tensor per
  // input, shaped like DataInput::dims, allocated on first use).
  Status Fill(int64_t step, int64_t micro, std::map<std::string, Tensor>* out);
  // Index in its step's batch of the first sample of micro-batch `micro` on this rank.
  int64_t first_sample(int64_t micro) const { return (micro * opts_.world_size + opts_.rank) * opts_.micro_batch; }

 private:
  const std::vector<int64_t>& Order(int64_t epoch);
  DataLoaderOptions opts_;
  std::vector<DataInput> inputs_;
  std::map<std::string, Tensor> data_;
  std::vector<std::string> notes_;
  int64_t num_samples_ = 0;
  int64_t order_epoch_ = -1;
  std::vector<int64_t> order_;
};

}  // namespace dsc
