#include "runtime/training_monitor.h"

#include <filesystem>

namespace dsc {
namespace {

// os.path.join(output_path, job_name): an absolute job_name replaces the path, "" joins to job_name.
std::string LogDir(const MonitorConfig& m) { return (std::filesystem::path(m.output_path) / m.job_name).string(); }

}  // namespace

std::vector<MonitorEvent> StepEvents(const DsConfig& cfg, int64_t step, double loss, double lr, double loss_scale) {
  const int64_t samples = step * cfg.train_batch_size;
  std::vector<MonitorEvent> events = {{"Train/Samples/train_loss", loss, samples}, {"Train/Samples/lr", lr, samples}};
  // engine.py: loss_scale = self._get_optimizer_loss_scale() if self.fp16_enabled() else None.
  if (cfg.fp16.enabled) events.push_back({"Train/Samples/loss_scale", loss_scale, samples});
  return events;
}

StatusOr<std::unique_ptr<TrainingMonitor>> TrainingMonitor::Create(const DsConfig& cfg) {
  if (!cfg.tensorboard.enabled && !cfg.csv_monitor.enabled) return std::unique_ptr<TrainingMonitor>();
  auto m = std::make_unique<TrainingMonitor>();
  if (cfg.tensorboard.enabled) {
    ASSIGN_OR_RETURN(m->tensorboard_, EventFileWriter::Create(LogDir(cfg.tensorboard)));
  }
  if (cfg.csv_monitor.enabled) {
    ASSIGN_OR_RETURN(CsvMonitor csv, CsvMonitor::Create(LogDir(cfg.csv_monitor)));
    m->csv_.emplace(std::move(csv));
  }
  return m;
}

Status TrainingMonitor::Write(const std::vector<MonitorEvent>& events) {
  for (const MonitorEvent& e : events) {
    if (tensorboard_) RETURN_IF_ERROR(tensorboard_->AddScalar(e.tag, e.value, e.samples));
    if (csv_) RETURN_IF_ERROR(csv_->Write(e.tag, e.value, e.samples));
  }
  if (tensorboard_) RETURN_IF_ERROR(tensorboard_->Flush());
  return Status::OK();
}

std::vector<std::string> TrainingMonitor::Describe() const {
  std::vector<std::string> out;
  if (tensorboard_) out.push_back("tensorboard: " + tensorboard_->path());
  if (csv_) out.push_back("csv_monitor: " + csv_->dir() + "/");
  return out;
}

}  // namespace dsc
