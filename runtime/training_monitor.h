// DeepSpeed's monitors in dsrun (deepspeed/monitor/monitor.py MonitorMaster): the `tensorboard`
// and `csv_monitor` sections, written by rank 0 after every optimizer step. The tags and x axis
// are DeepSpeed's: Train/Samples/train_loss (runtime/pipe/engine.py: the step's loss, averaged
// over its micro-batches), Train/Samples/lr and, with fp16, Train/Samples/loss_scale (the scale
// the step ran with) (runtime/engine.py, after _take_model_step), each at x = the samples trained
// so far (engine.global_samples: steps x train_batch_size, skipped steps included). Each monitor
// writes into os.path.join(output_path, job_name) (tensorboard.py, csv_monitor.py).
// The event file is flushed after every step, as DeepSpeed's write_events(flush=True) does, and
// closed when the run ends.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "frontend/config/ds_config.h"
#include "runtime/csv_monitor.h"
#include "runtime/event_file.h"

namespace dsc {

struct MonitorEvent {
  std::string tag;
  double value = 0;
  int64_t samples = 0;  // the x axis
};

// What DeepSpeed's engine writes after optimizer step `step` (1-based).
std::vector<MonitorEvent> StepEvents(const DsConfig& cfg, int64_t step, double loss, double lr, double loss_scale);

class TrainingMonitor {
 public:
  // Null when neither tensorboard nor csv_monitor is enabled. Creates the folders and the event
  // file; errors name the path.
  static StatusOr<std::unique_ptr<TrainingMonitor>> Create(const DsConfig& cfg);
  Status Write(const std::vector<MonitorEvent>& events);
  // Where each enabled monitor writes, for dsrun's progress output.
  std::vector<std::string> Describe() const;

 private:
  std::unique_ptr<EventFileWriter> tensorboard_;
  std::optional<CsvMonitor> csv_;
};

}  // namespace dsc
