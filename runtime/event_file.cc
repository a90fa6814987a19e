#include "runtime/event_file.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "runtime/safetensors.h"  // Crc32c
#include "runtime/tensorboard_event.pb.h"

namespace dsc {
namespace {

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void AppendLe(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// TensorBoard's writer numbers the files a process opens (event_file_writer.py _global_uid).
std::atomic<int> next_file_uid{0};

}  // namespace

uint32_t MaskedCrc32c(const void* data, size_t n) {
  const uint32_t crc = Crc32c(data, n);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string TfRecord(const std::string& data) {
  std::string rec;
  rec.reserve(data.size() + 16);
  AppendLe(&rec, data.size(), 8);
  AppendLe(&rec, MaskedCrc32c(rec.data(), 8), 4);
  rec += data;
  AppendLe(&rec, MaskedCrc32c(data.data(), data.size()), 4);
  return rec;
}

StatusOr<std::unique_ptr<EventFileWriter>> EventFileWriter::Create(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return InvalidArgument("tensorboard: cannot create the folder ", dir, ": ", ec.message());
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "localhost");
  char name[512];
  std::snprintf(name, sizeof name, "events.out.tfevents.%010lld.%s.%d.%d", static_cast<long long>(NowSeconds()), host,
                static_cast<int>(getpid()), next_file_uid++);
  const std::string path = (std::filesystem::path(dir) / name).string();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return InvalidArgument("tensorboard: cannot create the event file ", path);
  std::unique_ptr<EventFileWriter> w(new EventFileWriter(path, std::move(out)));
  tensorboard::Event ev;
  ev.set_wall_time(NowSeconds());
  ev.set_file_version("brain.Event:2");
  RETURN_IF_ERROR(w->Write(ev.SerializeAsString()));
  RETURN_IF_ERROR(w->Flush());
  return w;
}

Status EventFileWriter::AddScalar(const std::string& tag, double value, int64_t step) {
  tensorboard::Event ev;
  ev.set_wall_time(NowSeconds());
  ev.set_step(step);
  tensorboard::Summary::Value* v = ev.mutable_summary()->add_value();
  v->set_tag(tag);
  v->set_simple_value(static_cast<float>(value));
  return Write(ev.SerializeAsString());
}

Status EventFileWriter::Write(const std::string& event_bytes) {
  const std::string rec = TfRecord(event_bytes);
  out_.write(rec.data(), static_cast<std::streamsize>(rec.size()));
  if (!out_) return InvalidArgument("tensorboard: cannot write the event file ", path_);
  return Status::OK();
}

Status EventFileWriter::Flush() {
  out_.flush();
  if (!out_) return InvalidArgument("tensorboard: cannot write the event file ", path_);
  return Status::OK();
}

}  // namespace dsc
