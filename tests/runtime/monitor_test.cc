// The monitors' file formats against reference bytes: TFRecord framing and masked CRC-32C as
// TensorBoard's own writer produces them (tensorboard 2.21's RecordWriter and masked_crc32c), the
// Event encoding against tensorboard.compat.proto's, DeepSpeed's CSV names, headers and Python
// repr() floats, and the tags and x axis of DeepSpeed's engine.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "frontend/config/ds_config.h"
#include "runtime/csv_monitor.h"
#include "runtime/event_file.h"
#include "runtime/training_monitor.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

#define MT_CONCAT2(a, b) a##b
#define MT_CONCAT(a, b) MT_CONCAT2(a, b)
#define ASSERT_OK_AND_ASSIGN(lhs, expr)                                    \
  auto MT_CONCAT(or_, __LINE__) = (expr);                                  \
  ASSERT_TRUE(MT_CONCAT(or_, __LINE__).ok()) << MT_CONCAT(or_, __LINE__).status().ToString(); \
  lhs = std::move(*MT_CONCAT(or_, __LINE__))

std::string Hex(const std::string& bytes) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (unsigned char c : bytes) {
    s.push_back(d[c >> 4]);
    s.push_back(d[c & 15]);
  }
  return s;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Reference values printed by tensorboard 2.21 (tensorboard.compat.tensorflow_stub.pywrap_tensorflow).
TEST(EventFile, MaskedCrcMatchesTensorBoard) {
  EXPECT_EQ(MaskedCrc32c("123456789", 9), 0xc78ab0e5u);  // crc32c 0xe3069283, the CRC-32C check value
  EXPECT_EQ(MaskedCrc32c("", 0), 0xa282ead8u);
  EXPECT_EQ(MaskedCrc32c("hello", 5), 0x191c1fbbu);
}

// RecordWriter(io.BytesIO()).write(b"hello").
TEST(EventFile, RecordFramingMatchesTensorBoard) {
  EXPECT_EQ(Hex(TfRecord("hello")), "0500000000000000eab2043e68656c6c6fbb1f1c19");
}

// The file holds the version event, then the scalar; the scalar's record equals the framing of
// tensorboard's Event(wall_time=1.5, step=64, summary=Summary(value=[Value(tag="Train/Samples/lr",
// simple_value=0.25)])).SerializeToString() except for the wall time.
TEST(EventFile, WritesVersionThenScalarEvents) {
  testing::TempDir tmp;
  ASSERT_OK_AND_ASSIGN(auto w, EventFileWriter::Create(tmp.File("run/job")));
  ASSERT_TRUE(w->AddScalar("Train/Samples/lr", 0.25, 64).ok());
  ASSERT_TRUE(w->Flush().ok());
  const std::string name = std::filesystem::path(w->path()).filename().string();
  EXPECT_EQ(name.rfind("events.out.tfevents.", 0), 0u) << name;
  const std::string bytes = ReadAll(w->path());
  // Record 1: the file version.
  ASSERT_GE(bytes.size(), 12u);
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = len << 8 | static_cast<unsigned char>(bytes[i]);
  const std::string first = bytes.substr(12, len);
  EXPECT_NE(first.find("brain.Event:2"), std::string::npos);
  EXPECT_EQ(bytes.substr(0, 16 + len), TfRecord(first));
  // Record 2: wall time (field 1, 8 bytes after the tag 0x09) varies; the rest is tensorboard's.
  const std::string second_rec = bytes.substr(16 + len);
  const std::string want = "09000000000000f83f10402a190a170a10547261696e2f53616d706c65732f6c72150000803e";
  ASSERT_EQ(second_rec.size(), 16 + want.size() / 2);
  const std::string event = second_rec.substr(12, want.size() / 2);
  EXPECT_EQ(Hex(event).substr(18), want.substr(18));
  EXPECT_EQ(second_rec, TfRecord(event));
}

// Python 3's repr() of each value (what csv.writer writes for a float).
TEST(CsvMonitor, FloatsReadAsPythonRepr) {
  const std::pair<double, const char*> cases[] = {
      {0.001, "0.001"}, {65536.0, "65536.0"}, {1e-05, "1e-05"}, {1e+16, "1e+16"}, {1.5e+16, "1.5e+16"},
      {123456789012345.6, "123456789012345.6"}, {0.0001, "0.0001"}, {2.5, "2.5"}, {-0.0, "-0.0"}, {0.0, "0.0"},
      {1.0 / 3, "0.3333333333333333"}, {1.1805916207174113e+21, "1.1805916207174113e+21"},
      {-7.25e-07, "-7.25e-07"}, {1e+22, "1e+22"}, {9999999999999998.0, "9999999999999998.0"},
      {0.1 + 0.2, "0.30000000000000004"}, {5e-324, "5e-324"},
      {1.7976931348623157e+308, "1.7976931348623157e+308"}, {100.0, "100.0"}, {12345.678, "12345.678"},
      {std::numeric_limits<double>::quiet_NaN(), "nan"}, {std::numeric_limits<double>::infinity(), "inf"},
      {-std::numeric_limits<double>::infinity(), "-inf"}};
  for (const auto& [v, want] : cases) EXPECT_EQ(PythonFloatRepr(v), want) << want;
}

// csv_monitor.py: file = tag with '/' and ' ' -> '_', header "step,<last part>" once per run,
// rows appended, csv.writer's "\r\n".
TEST(CsvMonitor, DeepSpeedLayout) {
  EXPECT_EQ(CsvMonitorFileName("Train/Samples/train_loss"), "Train_Samples_train_loss.csv");
  EXPECT_EQ(CsvMonitorFileName("a b/c"), "a_b_c.csv");
  testing::TempDir tmp;
  ASSERT_OK_AND_ASSIGN(CsvMonitor csv, CsvMonitor::Create(tmp.File("out/job")));
  ASSERT_TRUE(csv.Write("Train/Samples/lr", 0.001, 8).ok());
  ASSERT_TRUE(csv.Write("Train/Samples/lr", 0.002, 16).ok());
  ASSERT_TRUE(csv.Write("loss", 2.5, 16).ok());
  EXPECT_EQ(ReadAll(tmp.File("out/job/Train_Samples_lr.csv")), "step,lr\r\n8,0.001\r\n16,0.002\r\n");
  EXPECT_EQ(ReadAll(tmp.File("out/job/loss.csv")), "step,loss\r\n16,2.5\r\n");
  // A second run into the same folder appends, header included, as DeepSpeed's 'a+' does.
  ASSERT_OK_AND_ASSIGN(CsvMonitor again, CsvMonitor::Create(tmp.File("out/job")));
  ASSERT_TRUE(again.Write("loss", 2.25, 24).ok());
  EXPECT_EQ(ReadAll(tmp.File("out/job/loss.csv")), "step,loss\r\n16,2.5\r\nstep,loss\r\n24,2.25\r\n");
}

// engine.py: lr at every boundary, loss_scale only with fp16; pipe/engine.py: train_loss; x = the
// samples seen after the step.
TEST(TrainingMonitor, DeepSpeedTagsAndSamplesAxis) {
  std::vector<std::string> warnings;
  ASSERT_OK_AND_ASSIGN(DsConfig fp32, ParseDsConfig(R"({"train_batch_size": 8})", {}, &warnings));
  std::vector<MonitorEvent> e = StepEvents(fp32, 3, 1.5, 0.01, 1.0);
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].tag, "Train/Samples/train_loss");
  EXPECT_EQ(e[0].value, 1.5);
  EXPECT_EQ(e[1].tag, "Train/Samples/lr");
  EXPECT_EQ(e[1].value, 0.01);
  for (const MonitorEvent& ev : e) EXPECT_EQ(ev.samples, 24);
  ASSERT_OK_AND_ASSIGN(DsConfig fp16, ParseDsConfig(R"({"train_batch_size": 4, "fp16": {"enabled": true}})", {}, &warnings));
  e = StepEvents(fp16, 2, 1.5, 0.01, 65536);
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[2].tag, "Train/Samples/loss_scale");
  EXPECT_EQ(e[2].value, 65536);
  EXPECT_EQ(e[2].samples, 8);
}

// os.path.join(output_path, job_name); nothing is created when both monitors are off.
TEST(TrainingMonitor, WritesIntoOutputPathJobName) {
  testing::TempDir tmp;
  std::vector<std::string> warnings;
  ASSERT_OK_AND_ASSIGN(DsConfig off, ParseDsConfig(R"({"train_batch_size": 8})", {}, &warnings));
  ASSERT_OK_AND_ASSIGN(auto none, TrainingMonitor::Create(off));
  EXPECT_EQ(none, nullptr);
  const std::string cfg = R"({"train_batch_size": 8, "tensorboard": {"enabled": true, "output_path": ")" + tmp.path() +
                          R"(/tb"}, "csv_monitor": {"enabled": true, "output_path": ")" + tmp.path() +
                          R"(/csv", "job_name": "j"}})";
  ASSERT_OK_AND_ASSIGN(DsConfig on, ParseDsConfig(cfg, {}, &warnings));
  ASSERT_OK_AND_ASSIGN(auto m, TrainingMonitor::Create(on));
  ASSERT_NE(m, nullptr);
  ASSERT_TRUE(m->Write(StepEvents(on, 1, 2.0, 0.5, 1.0)).ok());
  EXPECT_TRUE(std::filesystem::is_directory(tmp.File("tb/DeepSpeedJobName")));
  EXPECT_EQ(ReadAll(tmp.File("csv/j/Train_Samples_train_loss.csv")), "step,train_loss\r\n8,2.0\r\n");
  EXPECT_EQ(ReadAll(tmp.File("csv/j/Train_Samples_lr.csv")), "step,lr\r\n8,0.5\r\n");
}

}  // namespace
}  // namespace dsc
