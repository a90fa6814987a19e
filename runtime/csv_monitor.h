// DeepSpeed's CSV monitor (deepspeed/monitor/csv_monitor.py): one file per tag in the job's folder,
// named after the tag with '/' and ' ' turned into '_' ("Train/Samples/lr" ->
// Train_Samples_lr.csv), whose rows are "step,<value>" under a header "step,<last part of the
// tag>" written the first time this run writes the file. Files are appended to, as DeepSpeed opens
// them with 'a+'; a rerun into the same folder adds a second header, as DeepSpeed's does. Rows end
// in "\r\n" and floats read as Python's repr() of them (csv.writer's defaults).
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "ir/status.h"

namespace dsc {

// Python's repr() of a float: the shortest digits that read back to it, in positional notation
// when the decimal exponent is in [-4, 16), with ".0" when integral ("65536.0", "0.001", "1e-05",
// "1e+16", "nan", "inf", "-inf").
std::string PythonFloatRepr(double v);

// The file name DeepSpeed gives a tag's values (without the folder).
std::string CsvMonitorFileName(const std::string& tag);

class CsvMonitor {
 public:
  // Creates `dir` (and its parents).
  static StatusOr<CsvMonitor> Create(const std::string& dir);
  // Appends one row to the tag's file (opened and closed per row, as DeepSpeed does).
  Status Write(const std::string& tag, double value, int64_t step);
  const std::string& dir() const { return dir_; }

 private:
  explicit CsvMonitor(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
  std::set<std::string> started_;  // files this run has written a header into
};

}  // namespace dsc
