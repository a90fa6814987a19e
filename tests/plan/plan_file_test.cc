// The plan file: round trips, version and magic checks, atomic writes, and corruption never crashing.
#include "backend/plan_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "ir/onnx_convert.h"
#include "runtime/checkpoint_format.h"
#include "tests/plan/test_plans.h"

namespace dsc {
namespace {

using testing::MakeMlpPlan;
using testing::ReadFileOrDie;
using testing::TempDir;
using testing::WriteFileOrDie;

std::string OnnxBytes(const Graph& g) { return GraphToOnnx(g).SerializeAsString(); }

std::string Serialized(const Plan& plan) {
  StatusOr<std::string> bytes = SerializePlan(plan);
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  return bytes.ok() ? *bytes : std::string();
}

uint64_t Fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : s) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

void PutLE(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// A file with a correct checksum around any header and body, to reach the checks behind it.
std::string Assemble(uint32_t version, const std::string& header, const std::string& body) {
  std::string out(kPlanMagic, sizeof(kPlanMagic));
  PutLE(&out, version, 4);
  PutLE(&out, header.size(), 8);
  out += header;
  out += body;
  PutLE(&out, Fnv1a64(out), 8);
  return out;
}

// Recomputes the trailing checksum after an edit.
void FixChecksum(std::string* bytes) {
  bytes->resize(bytes->size() - 8);
  PutLE(bytes, Fnv1a64(*bytes), 8);
}

TEST(PlanFileTest, RoundTripKeepsEverything) {
  Plan plan = MakeMlpPlan();
  TempDir dir;
  const std::string path = dir.File("mlp.plan");
  ASSERT_TRUE(WritePlan(plan, path).ok());
  StatusOr<Plan> read = ReadPlan(path);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->format_version, kPlanFormatVersion);
  EXPECT_EQ(read->producer, plan.producer);
  EXPECT_EQ(read->source_model, plan.source_model);
  EXPECT_EQ(read->world_size, 2);
  EXPECT_EQ(read->command_line, plan.command_line);
  EXPECT_EQ(read->config, plan.config);
  ASSERT_EQ(read->pipeline.size(), plan.pipeline.size());
  for (size_t i = 0; i < plan.pipeline.size(); ++i) {
    EXPECT_EQ(read->pipeline[i].name, plan.pipeline[i].name);
    EXPECT_EQ(read->pipeline[i].changed, plan.pipeline[i].changed);
    EXPECT_DOUBLE_EQ(read->pipeline[i].seconds, plan.pipeline[i].seconds);
  }
  ASSERT_EQ(read->programs.size(), 1u);
  const PlanProgram* train = read->FindProgram("train");
  ASSERT_NE(train, nullptr);
  EXPECT_EQ(read->FindProgram("step"), nullptr);
  EXPECT_EQ(OnnxBytes(*train->graph), OnnxBytes(*plan.programs[0].graph));
  EXPECT_EQ(train->graph->training.loss, "loss");
  EXPECT_EQ(train->graph->training.parameters, plan.programs[0].graph->training.parameters);
  const Value* w = train->graph->FindValue("fc1.weight");
  ASSERT_TRUE(w && w->is_initializer());
  EXPECT_TRUE(w->initializer().SameContents(plan.programs[0].graph->FindValue("fc1.weight")->initializer()));
  // Writing what was read gives the same bytes: nothing is lost or reordered.
  EXPECT_EQ(Serialized(*read), ReadFileOrDie(path));
}

TEST(PlanFileTest, SeveralProgramsAndEmptyFields) {
  Plan plan;
  // Not micro_step and step: a runnable plan would be held to a consistent state table and config.
  plan.programs.push_back(PlanProgram{"forward", testing::MakeMlpGraph()});
  plan.programs.push_back(PlanProgram{"update", std::make_unique<Graph>()});
  StatusOr<Plan> read = ParsePlan(Serialized(plan), "mem");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  ASSERT_EQ(read->programs.size(), 2u);
  EXPECT_EQ(read->programs[0].name, "forward");
  EXPECT_EQ(read->programs[1].name, "update");
  EXPECT_EQ(read->programs[1].graph->num_nodes(), 0u);
  EXPECT_TRUE(read->config.is_null());
  EXPECT_TRUE(read->pipeline.empty());
}

TEST(PlanFileTest, HeaderIsReadableJson) {
  const std::string bytes = Serialized(MakeMlpPlan());
  ASSERT_EQ(bytes.compare(0, 8, std::string(kPlanMagic, 8)), 0);
  uint64_t len = 0;
  for (int i = 0; i < 8; ++i) len |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[12 + i])) << (8 * i);
  nlohmann::json h = nlohmann::json::parse(bytes.substr(20, len));
  EXPECT_EQ(h["format_version"], kPlanFormatVersion);
  EXPECT_EQ(h["source_model"], "models/mlp.onnx");
  EXPECT_EQ(h["world_size"], 2);
  EXPECT_EQ(h["pipeline"][2]["name"], "autodiff");
  EXPECT_EQ(h["config"]["zero_optimization"]["stage"], 2);
  ASSERT_EQ(h["programs"].size(), 1u);
  EXPECT_EQ(h["programs"][0]["name"], "train");
  EXPECT_EQ(h["programs"][0]["offset"], 20 + len);
  ASSERT_EQ(h["parameters"].size(), 4u);
  EXPECT_EQ(h["parameters"][0]["name"], "fc1.weight");
  EXPECT_EQ(h["parameters"][0]["shape"], nlohmann::json({8, 4}));
  EXPECT_EQ(h["parameters"][0]["numel"], 32);
  EXPECT_EQ(h["parameters"][0]["bytes"], 128);
  // The program blob is a plain ONNX model: `dd` it out and Netron opens it.
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(bytes.substr(h["programs"][0]["offset"].get<size_t>(), h["programs"][0]["size"].get<size_t>())));
  EXPECT_EQ(m.graph().name(), "mlp");
}

TEST(PlanFileTest, OtherVersionIsRejectedWithAdvice) {
  std::string bytes = Serialized(MakeMlpPlan());
  bytes[8] = 7;  // format version 7
  StatusOr<Plan> read = ParsePlan(bytes, "old.plan");
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().message(),
            "old.plan was written by plan format version 7; this dsrun/dsinspect reads version " +
                std::to_string(kPlanFormatVersion) + ": recompile with dscompile");
}

TEST(PlanFileTest, BadMagicIsNotAPlan) {
  for (const std::string& bytes : {std::string(), std::string("x"), std::string("PK\3\4 a zip file, not a plan at all..."),
                                   std::string("DSPLAX\0\n", 8) + std::string(100, '\0')}) {
    StatusOr<Plan> read = ParsePlan(bytes, "model.onnx");
    ASSERT_FALSE(read.ok());
    EXPECT_EQ(read.status().message(), "model.onnx is not a dscompile plan");
  }
}

TEST(PlanFileTest, MissingFileAndDirectoryNameThePath) {
  TempDir dir;
  StatusOr<Plan> missing = ReadPlan(dir.File("nope.plan"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(dir.File("nope.plan")), std::string::npos);
  StatusOr<Plan> directory = ReadPlan(dir.path());
  ASSERT_FALSE(directory.ok());
  EXPECT_NE(directory.status().message().find(dir.path()), std::string::npos);
}

TEST(PlanFileTest, EveryTruncationIsAnError) {
  const std::string bytes = Serialized(MakeMlpPlan());
  for (size_t len = 0; len < bytes.size(); ++len) {
    StatusOr<Plan> read = ParsePlan(bytes.substr(0, len), "cut.plan");
    ASSERT_FALSE(read.ok()) << "length " << len;
    EXPECT_NE(read.status().message().find("cut.plan"), std::string::npos) << read.status().message();
  }
  // Trailing bytes after the checksum are damage too.
  EXPECT_FALSE(ParsePlan(bytes + "x", "long.plan").ok());
}

TEST(PlanFileTest, EveryBitFlipIsAnError) {
  const std::string bytes = Serialized(MakeMlpPlan());
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (uint8_t mask : {0x01, 0x80}) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      StatusOr<Plan> read = ParsePlan(bad, "flip.plan");
      ASSERT_FALSE(read.ok()) << "byte " << i << " mask " << int(mask);
    }
  }
}

// With the checksum recomputed, damage reaches the header and protobuf parsers: whatever they
// make of it, they must answer with a plan or a Status, never crash.
TEST(PlanFileTest, DamageBehindAValidChecksumNeverCrashes) {
  const std::string bytes = Serialized(MakeMlpPlan());
  std::mt19937 rng(1234);
  int errors = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bad = bytes;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      const size_t at = 12 + rng() % (bad.size() - 20);  // keep magic and version
      bad[at] = static_cast<char>(rng() & 0xff);
    }
    FixChecksum(&bad);
    StatusOr<Plan> read = ParsePlan(bad, "fuzz.plan");
    if (!read.ok()) {
      ++errors;
      EXPECT_NE(read.status().message().find("fuzz.plan"), std::string::npos) << read.status().message();
    }
  }
  EXPECT_GT(errors, 0);
}

TEST(PlanFileTest, MalformedHeadersAreErrors) {
  const std::string model = GraphToOnnx(*testing::MakeMlpGraph()).SerializeAsString();
  auto header = [&](const std::string& programs) {
    return nlohmann::json::parse(R"({"producer":"dscompile","format_version":2,"source_model":"m.onnx",
      "world_size":1,"command_line":[],"pipeline":[],"config":null,"state":[],"programs":)" + programs + "}");
  };
  auto file_with = [&](nlohmann::json h) {
    return Assemble(2, h.dump(), model);
  };
  // A good file built by hand parses, so the failures below are due to the edit alone.
  {
    nlohmann::json h = header("[]");
    std::string text = h.dump();
    for (int round = 0; round < 2; ++round) {
      h["programs"] = nlohmann::json::array({{{"name", "train"}, {"offset", 20 + text.size()}, {"size", model.size()}}});
      text = h.dump();
    }
    StatusOr<Plan> read = ParsePlan(Assemble(2, text, model), "hand.plan");
    ASSERT_TRUE(read.ok()) << read.status().ToString();
    ASSERT_EQ(read->programs.size(), 1u);
  }
  struct Case {
    std::string file;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {Assemble(2, "{not json", model), "not a JSON object"},
      {Assemble(2, "[1,2]", model), "not a JSON object"},
      {file_with(header(R"([{"name":"train","offset":1,"size":10}])")), "lies outside the file"},
      {file_with(header(R"([{"name":"train","offset":100000,"size":10}])")), "lies outside the file"},
      {file_with(header(R"([{"name":"train","offset":18446744073709551615,"size":18446744073709551615}])")),
       "lies outside the file"},
      {file_with(header(R"([{"name":"train","offset":-5,"size":10}])")), "wrong type"},
      {file_with(header(R"([{"name":"train","size":10}])")), "has no 'offset'"},
      {file_with(header(R"([{"name":"a","offset":0,"size":0},{"name":"a","offset":0,"size":0}])")), "twice"},
      {file_with(header(R"("train")")), "wrong type"},
      {Assemble(2, R"({"format_version":2})", ""), "has no 'producer'"},
      {Assemble(2, R"({"format_version":3})", ""), "disagrees"},
      {Assemble(2, "{}", std::string(64, '\xff')), "has no 'format_version'"},
  };
  for (const Case& c : cases) {
    StatusOr<Plan> read = ParsePlan(c.file, "hand.plan");
    ASSERT_FALSE(read.ok()) << c.expect;
    EXPECT_NE(read.status().message().find(c.expect), std::string::npos) << read.status().message();
    EXPECT_NE(read.status().message().find("hand.plan"), std::string::npos) << read.status().message();
  }
}

TEST(PlanFileTest, GarbageProgramBytesAreAnError) {
  std::string garbage(200, '\xff');
  nlohmann::json h = nlohmann::json::parse(R"({"producer":"x","format_version":2,"source_model":"",
    "world_size":1,"command_line":[],"pipeline":[],"config":{}})");
  std::string text = h.dump();
  for (int round = 0; round < 2; ++round) {
    h["programs"] = nlohmann::json::array({{{"name", "train"}, {"offset", 20 + text.size()}, {"size", garbage.size()}}});
    text = h.dump();
  }
  StatusOr<Plan> read = ParsePlan(Assemble(2, text, garbage), "g.plan");
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find("program 'train'"), std::string::npos) << read.status().message();
}

TEST(PlanFileTest, HugeInitializerShapeIsRejectedBeforeAllocating) {
  onnx::ModelProto m = GraphToOnnx(*testing::MakeMlpGraph());
  m.mutable_graph()->mutable_initializer(0)->set_dims(0, int64_t{1} << 38);
  const std::string model = m.SerializeAsString();
  nlohmann::json h = nlohmann::json::parse(R"({"producer":"x","format_version":2,"source_model":"",
    "world_size":1,"command_line":[],"pipeline":[],"config":{}})");
  std::string text = h.dump();
  for (int round = 0; round < 2; ++round) {
    h["programs"] = nlohmann::json::array({{{"name", "train"}, {"offset", 20 + text.size()}, {"size", model.size()}}});
    text = h.dump();
  }
  StatusOr<Plan> read = ParsePlan(Assemble(2, text, model), "big.plan");
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find("fc1.weight"), std::string::npos) << read.status().message();
}

TEST(PlanFileTest, FailedWriteLeavesNothing) {
  TempDir dir;
  const std::string missing_dir = dir.File("no/such/dir/x.plan");
  Status s = WritePlan(MakeMlpPlan(), missing_dir);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(missing_dir), std::string::npos) << s.message();
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));

  // A plan that cannot be encoded leaves an existing file untouched and no temp file behind.
  const std::string path = dir.File("keep.plan");
  WriteFileOrDie(path, "previous contents");
  Plan broken = MakeMlpPlan();
  broken.programs.push_back(PlanProgram{"step", nullptr});
  s = WritePlan(broken, path);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
  EXPECT_EQ(ReadFileOrDie(path), "previous contents");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()), 1);

  // Duplicate program names are refused rather than written ambiguously.
  Plan twice = MakeMlpPlan();
  twice.programs.push_back(PlanProgram{"train", testing::MakeMlpGraph()});
  EXPECT_FALSE(WritePlan(twice, path).ok());
  EXPECT_EQ(ReadFileOrDie(path), "previous contents");
}

TEST(PlanFileTest, WriteReplacesAnExistingPlan) {
  TempDir dir;
  const std::string path = dir.File("p.plan");
  WriteFileOrDie(path, "old");
  ASSERT_TRUE(WritePlan(MakeMlpPlan(), path).ok());
  EXPECT_TRUE(ReadPlan(path).ok());
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()), 1);
}

}  // namespace
}  // namespace dsc

namespace dsc {
namespace {

TEST(PlanFileTest, StateTableAndInitialValuesRoundTrip) {
  Plan plan = testing::MakeMlpPlan();
  Tensor w = Tensor::FromVector<float>(DType::kFloat32, {2}, {1.5f, -2.0f});
  ASSERT_TRUE(plan.AddState(StateInfo{"w", StateKind::kParameter, "", DType::kFloat32, {2}, false}, &w).ok());
  ASSERT_TRUE(plan.AddState(StateInfo{"w.exp_avg", StateKind::kOptimizer, "w", DType::kFloat32, {2}, false}, nullptr).ok());
  EXPECT_FALSE(plan.AddState(StateInfo{"w", StateKind::kBuffer, "", DType::kFloat32, {2}, false}, nullptr).ok());
  StatusOr<std::string> bytes = SerializePlan(plan);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  StatusOr<Plan> read = ParsePlan(*bytes, "state.plan");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  ASSERT_EQ(read->state.size(), 2u);
  EXPECT_EQ(read->state[1].kind, StateKind::kOptimizer);
  EXPECT_EQ(read->state[1].owner, "w");
  EXPECT_TRUE(read->state[1].zero_init);
  EXPECT_FALSE(read->state[0].zero_init);
  ASSERT_TRUE(read->initial_state);
  EXPECT_TRUE(read->initial_state->FindValue("w")->initializer().SameContents(w));
  EXPECT_EQ(read->FindProgram(read->programs[0].name), &read->programs[0]);
}

}  // namespace
}  // namespace dsc

namespace dsc {
namespace {

// dscompile's plans hold no weights: WritePlan puts the initial values into PLAN.weights as a
// step-0 checkpoint the header names relative to the plan, so the two move together.
TEST(PlanFileTest, WrittenPlansKeepTheirInitialValuesInAStep0Checkpoint) {
  TempDir dir;
  Plan plan = testing::MakeMlpPlan();
  Tensor w = Tensor::FromVector<float>(DType::kFloat32, {2, 3}, {1.5f, -2.0f, 3.0f, 0.25f, -1.0f, 7.0f});
  StateInfo shard{"w", StateKind::kParameter, "", DType::kFloat32, {3}, false};
  shard.shard_of_numel = 6;  // half of it on each of two ranks
  plan.world_size = 2;
  ASSERT_TRUE(plan.AddState(shard, &w).ok());
  const std::string path = dir.File("a/p.plan");
  std::filesystem::create_directories(dir.File("a"));
  ASSERT_TRUE(WritePlan(plan, path).ok());
  EXPECT_TRUE(std::filesystem::exists(dir.File("a/p.plan.weights/global_step0/manifest.json")));
  EXPECT_EQ(ReadFileOrDie(dir.File("a/p.plan.weights/latest")), "global_step0");
  std::filesystem::rename(dir.File("a"), dir.File("b"));
  StatusOr<Plan> read = ReadPlan(dir.File("b/p.plan"));
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_FALSE(read->initial_state);
  EXPECT_EQ(read->initial_values_dir, dir.File("b/p.plan.weights/global_step0"));
  EXPECT_EQ(read->FullShape(*read->FindState("w")), (std::vector<int64_t>{2, 3}));
  StatusOr<Checkpoint> ckpt = Checkpoint::Open(read->initial_values_dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  StatusOr<Tensor> got = ckpt->ReadTensor("w");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(got->SameContents(w));
  EXPECT_EQ(got->dims(), w.dims());
}

}  // namespace
}  // namespace dsc
