// TensorBoard event files: TFRecord framing (length, masked CRC-32C of the length, data, masked
// CRC-32C of the data) around Event protocol buffers (runtime/tensorboard_event.proto), as
// TensorBoard's own writer (tensorboard/summary/writer/event_file_writer.py, record_writer.py)
// lays them out, so TensorBoard and its EventAccumulator read them.
//
//   ASSIGN_OR_RETURN(auto w, EventFileWriter::Create("runs/job"));  // writes the version event
//   RETURN_IF_ERROR(w->AddScalar("Train/Samples/lr", 1e-3, 64));
//   RETURN_IF_ERROR(w->Flush());
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>

#include "ir/status.h"

namespace dsc {

// TFRecord's checksum: CRC-32C rotated right by 15 bits plus 0xa282ead8 (tensorflow/core/lib/hash/
// crc32c.h Mask; tensorboard/summary/writer/record_writer.py masked_crc32c).
uint32_t MaskedCrc32c(const void* data, size_t n);
// One TFRecord: uint64 length, uint32 masked crc of those 8 bytes, the data, uint32 masked crc of
// the data, integers little-endian.
std::string TfRecord(const std::string& data);

class EventFileWriter {
 public:
  // Creates `dir` (and its parents) and in it events.out.tfevents.<10-digit UNIX seconds>.<host>.
  // <pid>.<n> (the name TensorBoard's and PyTorch's writers use; n counts the files this process
  // opened), whose first event is the file version "brain.Event:2". Errors name the path.
  static StatusOr<std::unique_ptr<EventFileWriter>> Create(const std::string& dir);
  // A scalar summary event at `step` (TensorBoard's x axis) stamped with the current time. The
  // value travels as a float (Summary.Value.simple_value), as PyTorch's add_scalar writes it.
  Status AddScalar(const std::string& tag, double value, int64_t step);
  Status Flush();
  const std::string& path() const { return path_; }

 private:
  EventFileWriter(std::string path, std::ofstream out) : path_(std::move(path)), out_(std::move(out)) {}
  Status Write(const std::string& event_bytes);
  std::string path_;
  std::ofstream out_;
};

}  // namespace dsc
