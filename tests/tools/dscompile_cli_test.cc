// The dscompile command line: compiling the bundled models, dumps, pipelines and error exits.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "backend/plan_file.h"
#include "ir/dsc_ops.h"
#include "ir/onnx_convert.h"
#include "ir/text.h"
#include "onnx/checker.h"
#include "onnx/defs/parser.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::ShellQuote;
using nlohmann::json;

const std::string kModels = DSC_SOURCE_DIR "/models";
const std::string kConfigs = DSC_SOURCE_DIR "/configs";

CommandResult Dscompile(const std::string& args) {
  return testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " + args);
}

std::string GptArgs(const std::string& plan) {
  return ShellQuote(kModels + "/gpt/gpt.onnx") + " --config " + ShellQuote(kConfigs + "/gpt.json") + " -o " +
         ShellQuote(plan);
}

TEST(DscompileCli, HelpListsEveryFlag) {
  CommandResult r = Dscompile("--help");
  EXPECT_EQ(r.rc, 0);
  for (const char* flag : {"--config", "--world-size", "--dump-dir", "--print-ir-after", "--passes",
                           "--stop-after-pass-num", "--time-passes", "--dim", "--loss", "--freeze",
                           "--explain-config", "--lr-schedule", "--strict-config", "--trainable", "--add-trainable", "--list-ops",
                           "--copy-weights", "--no-decay-bias-norm", "--disable-fuse-rewrite"})
    EXPECT_NE(r.output.find(flag), std::string::npos) << flag;
}

// A fuse rewrite that does not exist is refused before the import, naming the known ones, even
// when the pipeline would not run fuse.
TEST(DscompileCli, DisableFuseRewriteRefusesUnknownNames) {
  testing::TempDir dir;
  CommandResult r = Dscompile(GptArgs(dir.File("gpt.dsplan")) + " -q --disable-fuse-rewrite cast-into-update,nope");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.output.find("--disable-fuse-rewrite nope: no such fuse rewrite (cancel-transposes,"), std::string::npos)
      << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir.File("gpt.dsplan")));
}

TEST(DscompileCli, ListOpsNamesTheOpsCurrentExportersWrite) {
  CommandResult r = Dscompile("--list-ops");
  ASSERT_EQ(r.rc, 0) << r.output;
  for (const char* op : {"  Gelu  compute", "  Attention  compute", "  RMSNormalization  compute",
                         "  GatherND  compute", "  Shape  folded", "  MatMul  compute",
                         "  ConvTranspose  compute", "  Resize  compute", "  LSTM  decomposed", "  GRU  decomposed",
                         "  RNN  decomposed", "  TopK  compute", "  ArgMax  compute", "  ReduceMax  compute",
                         "  ReduceProd  compute", "  ReduceLogSumExp  decomposed", "  DFT  decomposed", "  NonZero  folded",
                         "  Col2Im  decomposed"})
    EXPECT_NE(r.output.find(op), std::string::npos) << op << "\n" << r.output;
}

TEST(DscompileCli, TrainableReplacesTheParameterChoice) {
  testing::TempDir dir;
  CommandResult r = Dscompile(GptArgs(dir.File("gpt.dsplan")) + " --trainable 'transformer\\.ln_f\\..*'");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("parameters chosen by --trainable"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("trainable parameters (2):"), std::string::npos) << r.output;
  CommandResult typo = Dscompile(GptArgs(dir.File("typo.dsplan")) + " --trainable 'ln_f'");
  EXPECT_NE(typo.rc, 0);
  EXPECT_NE(typo.output.find("--trainable 'ln_f' matches no float initializer"), std::string::npos) << typo.output;
}

// A file without a parameter list (a legacy torch.onnx.export) holds nn.PReLU()'s one-element
// slope and a scalar buffer alike: both stay constant, named in a warning; --add-trainable trains
// the one the user names, besides the chosen parameters.
TEST(DscompileCli, SingleElementInitializersWarnAndAddTrainableAddsThem) {
  testing::TempDir dir;
  onnx::ModelProto m;
  auto st = onnx::OnnxParser::Parse(m, R"(
    <ir_version: 8, opset_import: ["" : 17]>
    main (float[batch,3] x, int64[batch] y) => (float[] loss) <float[3,3] fc_weight = {1.0, 0.0, 0.0, 0.0, 1.0,
        0.0, 0.0, 0.0, 1.0}, float[3] fc_bias = {0.1, 0.2, 0.3}, float[1] act_slope = {0.25}, float scale = {0.5}>
    {
      h = Gemm <transB = 1> (x, fc_weight, fc_bias)
      a = PRelu (h, act_slope)
      s = Mul (a, scale)
      loss = SoftmaxCrossEntropyLoss (s, y)
    })");
  ASSERT_TRUE(st.IsOK()) << st.ErrorMessage();
  m.mutable_graph()->mutable_output(0)->mutable_type()->mutable_tensor_type()->mutable_shape();  // a scalar
  const std::string model = dir.File("prelu.onnx");
  std::ofstream(model, std::ios::binary) << m.SerializeAsString();
  const std::string base = ShellQuote(model) + " --config " + ShellQuote(kConfigs + "/gpt.json") + " -o " +
                           ShellQuote(dir.File("p.dsplan"));
  CommandResult r = Dscompile(base);
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("trainable parameters (2):"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("2 single-element initializers on a gradient path stay constant: 'act_slope', 'scale'"),
            std::string::npos) << r.output;
  CommandResult added = Dscompile(base + " --add-trainable 'act_slope'");
  ASSERT_EQ(added.rc, 0) << added.output;
  EXPECT_NE(added.output.find("trainable parameters (3):"), std::string::npos) << added.output;
  EXPECT_NE(added.output.find("and --add-trainable"), std::string::npos) << added.output;
  EXPECT_NE(added.output.find("1 single-element initializer on a gradient path stays constant: 'scale'"),
            std::string::npos) << added.output;
  CommandResult typo = Dscompile(base + " --add-trainable 'prelu'");
  EXPECT_NE(typo.rc, 0);
  EXPECT_NE(typo.output.find("--add-trainable 'prelu' matches no float initializer"), std::string::npos)
      << typo.output;
}

// Loads every NN-pass.onnx dump in `dir` and runs ONNX's checker on it, as onnx.checker.check_model
// does: our ops live in a domain of their own (ir/dsc_ops.h), so each dump stays valid ONNX. Returns
// how many files it checked.
int ExpectEveryDumpIsValidOnnx(const std::string& dir) {
  int checked = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".onnx") continue;
    ++checked;
    try {
      onnx::checker::check_model(e.path().string());
    } catch (const std::exception& ex) {
      ADD_FAILURE() << e.path() << ": " << ex.what();
    }
  }
  return checked;
}

TEST(DscompileCli, CompilesGptAndDumpsEveryPass) {
  testing::TempDir dir;
  CommandResult r = Dscompile(GptArgs(dir.File("gpt.dsplan")) + " --dump-dir " + ShellQuote(dir.File("dumps")));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("trainable parameters (30)"), std::string::npos) << r.output;
  // One program until accumulate splits it into micro_step and step.
  for (const char* f : {"00-input", "01-specialize", "02-select-loss", "03-fold-constants", "04-dce", "05-precision",
                        "06-recognize", "07-autodiff", "08-sample-dropout", "09-rematerialize"}) {
    EXPECT_TRUE(fs::exists(dir.File("dumps/") + f + ".onnx.txt")) << f;
    EXPECT_TRUE(fs::exists(dir.File("dumps/") + f + ".onnx")) << f;
  }
  for (const char* f : {"10-accumulate", "11-optimizer", "12-zero-partition", "13-fuse", "17-memory-plan"}) {
    EXPECT_TRUE(fs::exists(dir.File("dumps/") + f + ".onnx.txt")) << f;
    EXPECT_TRUE(fs::exists(dir.File("dumps/") + f + ".micro_step.onnx")) << f;
    EXPECT_TRUE(fs::exists(dir.File("dumps/") + f + ".step.onnx")) << f;
  }
  StatusOr<Plan> plan = ReadPlan(dir.File("gpt.dsplan"));
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ASSERT_EQ(plan->pipeline.size(), 17u);
  EXPECT_EQ(plan->config.value("train_batch_size", 0), 16);
  ASSERT_NE(plan->FindProgram("micro_step"), nullptr);
  ASSERT_NE(plan->FindProgram("step"), nullptr);
  // 30 parameters, their accumulators and two AdamW moments each.
  EXPECT_EQ(plan->state.size(), 30u * 4);
  for (const auto& p : plan->programs)
    for (const auto& n : p.graph->nodes()) EXPECT_NE(n->op_type(), "Shape") << n->Describe();
  EXPECT_EQ(ExpectEveryDumpIsValidOnnx(dir.File("dumps")), 10 + 8 * 2);
}

// Tensor.detach() is restored as ai.dscompile.StopGradient (frontend/torch_detach.h): every dump,
// from the import to the memory plan, is valid ONNX, from both the optimized export and the helper's.
TEST(DscompileCli, EveryDumpOfADetachModelIsValidOnnx) {
  for (const char* form : {"dynamo_default", "helper"}) {
    SCOPED_TRACE(form);
    testing::TempDir dir;
    CommandResult r = Dscompile(ShellQuote(kModels + "/current/detach/detach." + form + ".onnx") + " --config " +
                                ShellQuote(kModels + "/reference_configs/adam.json") + " -q -o " +
                                ShellQuote(dir.File("p")) + " --dump-dir " + ShellQuote(dir.File("dumps")));
    ASSERT_EQ(r.rc, 0) << r.output;
    EXPECT_EQ(ExpectEveryDumpIsValidOnnx(dir.File("dumps")), 10 + 8 * 2);
    StatusOr<Plan> plan = ReadPlan(dir.File("p"));
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    int stops = 0;
    for (const auto& n : plan->FindProgram("micro_step")->graph->nodes()) stops += ops::IsStopGradient(*n);
    EXPECT_EQ(stops, 3);  // (q - z).detach(), z.detach(), tanh(st).detach()
  }
}

// Model-state bytes per rank in fp32 with Adam: 4 psi parameters, 4 psi gradients, 8 psi moments.
TEST(DscompileCli, InspectReportsZeroFormulaMemory) {
  testing::TempDir dir;
  ASSERT_EQ(Dscompile(GptArgs(dir.File("p")) + " -q").rc, 0);
  CommandResult r = testing::RunCommand(ShellQuote(DSINSPECT_PATH) + " --json " + ShellQuote(dir.File("p")), false);
  ASSERT_EQ(r.rc, 0) << r.output;
  nlohmann::json s = nlohmann::json::parse(r.output);
  const int64_t psi = 30144;
  EXPECT_EQ(s["memory"]["parameters"].get<int64_t>(), 4 * psi);
  EXPECT_EQ(s["memory"]["gradients"].get<int64_t>(), 4 * psi);
  EXPECT_EQ(s["memory"]["optimizer_states"].get<int64_t>(), 8 * psi);
  EXPECT_GT(s["memory"]["activations_peak"].get<int64_t>(), 0);
  for (const auto& p : s["programs"])
    EXPECT_LE(p["memory"]["arena_bytes"].get<int64_t>(), p["memory"]["unshared_bytes"].get<int64_t>());
}

TEST(DsrunCli, TrainsAndReportsErrors) {
  testing::TempDir dir;
  ASSERT_EQ(Dscompile(GptArgs(dir.File("p")) + " -q").rc, 0);
  const std::string data = ShellQuote(kModels + "/gpt/data");
  CommandResult r = testing::RunCommand(ShellQuote(DSRUN_PATH) + " " + ShellQuote(dir.File("p")) + " --data " + data +
                                        " --steps 20 --metrics " + ShellQuote(dir.File("m.jsonl")));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("step     10  loss"), std::string::npos) << r.output;  // steps_per_print 10
  std::ifstream in(dir.File("m.jsonl"));
  int lines = 0;
  double first = 0, last = 0;
  for (std::string line; std::getline(in, line); ++lines) {
    nlohmann::json m = nlohmann::json::parse(line);
    for (const char* k : {"step", "loss", "lr", "grad_norm", "loss_scale", "skipped", "samples_per_s", "step_time_s"})
      EXPECT_TRUE(m.contains(k)) << k;
    (lines == 0 ? first : last) = m["loss"].get<double>();
  }
  EXPECT_EQ(lines, 20);
  EXPECT_LT(last, first);
  struct Case {
    std::string args, needle;
  } cases[] = {
      {ShellQuote(dir.File("p")), "--data DIR is required"},
      {ShellQuote(dir.File("p")) + " --data /nonexistent", "/nonexistent: no such directory"},
      {ShellQuote(dir.File("p")) + " --data " + ShellQuote(kModels + "/mlp/data"), "idx.npy: missing"},
      {ShellQuote(dir.File("p")) + " --data " + data + " --steps 0", "--steps must be at least 1"},
      {"/nonexistent.dsplan --data " + data, "/nonexistent.dsplan"},
      // A metrics file that cannot be written stops the run instead of losing every line.
      {ShellQuote(dir.File("p")) + " --data " + data + " --steps 1 --metrics /dev/full",
       "--metrics /dev/full: cannot write: No space left on device"},
      {ShellQuote(dir.File("p")) + " --data " + data + " --steps 1 --metrics /nonexistent/m.jsonl",
       "dsrun: error: --metrics /nonexistent/m.jsonl: cannot open for writing: No such file or directory"},
  };
  for (const Case& c : cases) {
    CommandResult e = testing::RunCommand(ShellQuote(DSRUN_PATH) + " " + c.args);
    EXPECT_NE(e.rc, 0) << c.args;
    EXPECT_NE(e.output.find(c.needle), std::string::npos) << c.args << "\n" << e.output;
  }
  // A bad DSC_CPU_ISA is the environment's fault, named before any kernel (not the plan's).
  CommandResult isa = testing::RunCommand("DSC_CPU_ISA=avx9 " + ShellQuote(DSRUN_PATH) + " " + ShellQuote(dir.File("p")) +
                                          " --data " + data + " --steps 1");
  EXPECT_NE(isa.rc, 0);
  EXPECT_NE(isa.output.find("DSC_CPU_ISA: unknown CPU ISA \"avx9\"; use baseline, avx2 or avx512"), std::string::npos)
      << isa.output;
  EXPECT_EQ(isa.output.find("plan"), std::string::npos) << isa.output;
}

// The losses of a 2-step run of PLAN on the l12 GPT-2 data, or the run's output on failure.
std::vector<double> TwoStepLosses(const std::string& plan, const std::string& data, std::string* output) {
  const std::string metrics = plan + ".m.jsonl";
  CommandResult r = testing::RunCommand(ShellQuote(DSRUN_PATH) + " " + ShellQuote(plan) + " --data " +
                                        ShellQuote(data) + " --steps 2 --no-shuffle -q --metrics " + ShellQuote(metrics));
  *output = r.output;
  std::vector<double> losses;
  if (r.rc != 0) return losses;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) losses.push_back(nlohmann::json::parse(line)["loss"].get<double>());
  return losses;
}

TEST(DscompileCli, WeightsReferToTheModelUnlessCopied) {
  testing::TempDir dir;
  const std::string model = dir.File("gpt2.onnx");
  const std::string data = kModels + "/gpt2_sized/l12/data";
  fs::copy_file(kModels + "/gpt2_sized/l12/gpt2.onnx", model);
  const std::string args = ShellQuote(model) + " --config " + ShellQuote(kConfigs + "/gpt.json") + " -q -o ";
  ASSERT_EQ(Dscompile(args + ShellQuote(dir.File("ref.dsplan"))).rc, 0);
  ASSERT_EQ(Dscompile(args + ShellQuote(dir.File("copy.dsplan")) + " --copy-weights").rc, 0);
  auto manifest = [&](const std::string& plan) {
    std::ifstream in(dir.File(plan + ".weights/global_step0/manifest.json"));
    return nlohmann::json::parse(in);
  };
  const nlohmann::json ref = manifest("ref.dsplan"), copy = manifest("copy.dsplan");
  ASSERT_TRUE(ref.contains("sources")) << ref.dump(1).substr(0, 2000);
  EXPECT_EQ(ref["sources"]["source0"]["path"], fs::absolute(model).lexically_normal().string());
  EXPECT_FALSE(copy.contains("sources"));
  // The referring folder holds only what is not the model's bytes (small tensors).
  EXPECT_LT(fs::file_size(dir.File("ref.dsplan.weights/global_step0/rank-0.safetensors")) * 4,
            fs::file_size(dir.File("copy.dsplan.weights/global_step0/rank-0.safetensors")));
  std::string out;
  const std::vector<double> a = TwoStepLosses(dir.File("ref.dsplan"), data, &out);
  ASSERT_EQ(a.size(), 2u) << out;
  const std::vector<double> b = TwoStepLosses(dir.File("copy.dsplan"), data, &out);
  EXPECT_EQ(a, b) << out;
  // A changed model is refused by the plan that refers to it, not by the one that copied.
  { std::ofstream(model, std::ios::app) << "x"; }
  EXPECT_TRUE(TwoStepLosses(dir.File("ref.dsplan"), data, &out).empty());
  EXPECT_NE(out.find(fs::absolute(model).lexically_normal().string() + ", which has changed"), std::string::npos) << out;
  EXPECT_NE(out.find("compile the plan again"), std::string::npos) << out;
  fs::remove(model);
  EXPECT_EQ(TwoStepLosses(dir.File("copy.dsplan"), data, &out), a) << out;
}

TEST(DscompileCli, PrintIrAfterAndTimePasses) {
  testing::TempDir dir;
  CommandResult r = Dscompile(GptArgs(dir.File("p")) + " -q --print-ir-after=fold-constants --time-passes");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("IR after pass 3 'fold-constants'"), std::string::npos);
  EXPECT_EQ(r.output.find("IR after pass 2"), std::string::npos);
  EXPECT_NE(r.output.find("pass  4 dce"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("pass  9 rematerialize"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("pass 13 fuse"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("pass 14 schedule-collectives"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("pass 15 offload-optimizer"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("pass 16 offload-param"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("pass 17 memory-plan"), std::string::npos) << r.output;
}

TEST(DscompileCli, ExplicitPassesAndStopAfter) {
  testing::TempDir dir;
  CommandResult r = Dscompile(GptArgs(dir.File("p")) + " -q --passes=specialize,select-loss --stop-after-pass-num=1");
  ASSERT_EQ(r.rc, 0) << r.output;
  StatusOr<Plan> plan = ReadPlan(dir.File("p"));
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->pipeline.size(), 1u);
  EXPECT_EQ(plan->pipeline[0].name, "specialize");
}

TEST(DscompileCli, Errors) {
  testing::TempDir dir;
  struct Case {
    std::string args, needle;
  } cases[] = {
      {GptArgs(dir.File("p")) + " --passes=specialise", "unknown pass 'specialise'"},
      {GptArgs(dir.File("p")) + " --print-ir-after=nope", "unknown pass 'nope'"},
      {GptArgs(dir.File("p")) + " --bogus", "unknown option --bogus"},
      {GptArgs(dir.File("p")) + " --loss nope", "--loss nope is not a graph output"},
      {GptArgs(dir.File("p")) + " --dim batch=8", "contradicts the micro batch size 4"},
      {ShellQuote(kModels + "/gpt/gpt.onnx"), "--config CFG.json is required"},
      {"/nonexistent.onnx --config " + ShellQuote(kConfigs + "/gpt.json"), "/nonexistent.onnx: no such model file"},
  };
  for (const Case& c : cases) {
    CommandResult r = Dscompile(c.args);
    EXPECT_NE(r.rc, 0) << c.args;
    EXPECT_NE(r.output.find(c.needle), std::string::npos) << c.args << "\n" << r.output;
  }
  EXPECT_FALSE(fs::exists(dir.File("p"))) << "a failed compile must not leave a plan behind";
}

// Config features this compiler does not act on are refused, never parsed and ignored.
TEST(DscompileCli, RefusesConfigFeaturesItDoesNotImplement) {
  testing::TempDir dir;
  const std::string base = R"("train_batch_size": 16, "train_micro_batch_size_per_gpu": 16, "optimizer": {"type": "Adam"})";
  struct Case {
    std::string extra, needle;
  } cases[] = {
      // The monitors that need a service; tensorboard and csv_monitor are written by dsrun.
      {R"("wandb": {"enabled": true, "project": "p"})",
       "wandb: the Weights & Biases monitor needs its service; \"tensorboard\" and \"csv_monitor\" write"},
      {R"("comet": {"enabled": true})", "comet: the Comet monitor needs its service; \"tensorboard\" and \"csv_monitor\""},
      {R"("flops_profiler": {"enabled": true, "module_depth": 2})", "flops_profiler.module_depth: only -1"},
      {R"("fp16": {"enabled": true, "auto_cast": true})", "fp16.auto_cast"},
      {R"("pipeline": {"stages": 2})", "pipeline: pipeline parallelism"},
      {R"("scheduler": {"type": "StepLR", "params": {"step_size": 2}})", "scheduler.type: torch LR scheduler \"StepLR\""},
      {R"("zero_optimization": {"stage": 3, "offload_param": {"device": "nvme"}})",
       "zero_optimization.offload_param.nvme_path: device \"nvme\" needs the folder"},
      {R"("gradient_predivide_factor": 0)", "gradient_predivide_factor: 0"},
      {R"("steps_per_print": 0)", "steps_per_print: 0"},
  };
  for (const Case& c : cases) {
    testing::WriteFileOrDie(dir.File("c.json"), "{" + base + ", " + c.extra + "}");
    CommandResult r = Dscompile(ShellQuote(kModels + "/mlp/mlp.onnx") + " --config " + ShellQuote(dir.File("c.json")) +
                                " -o " + ShellQuote(dir.File("p")));
    EXPECT_NE(r.rc, 0) << c.extra;
    EXPECT_NE(r.output.find(c.needle), std::string::npos) << c.extra << "\n" << r.output;
    EXPECT_FALSE(fs::exists(dir.File("p"))) << c.extra;
    // DeepSpeed accepts each: --explain-config explains it and names what the compile refuses.
    CommandResult e = Dscompile("--config " + ShellQuote(dir.File("c.json")) + " --explain-config");
    EXPECT_EQ(e.rc, 0) << c.extra << "\n" << e.output;
    EXPECT_NE(e.output.find("will be refused at compile time: " + c.needle), std::string::npos) << c.extra << "\n" << e.output;
  }
}

// A model whose ops import and differentiate but have no kernel (a Conv over 4 spatial dims) fails
// at compile time, listing the nodes, instead of at dsrun's first step.
TEST(DscompileCli, MissingKernelsAreCompileErrors) {
  testing::TempDir dir;
  auto g = ParseGraph(R"(<ir_version: 8, opset_import: ["" : 17]>
conv4d (float[batch,2,3,3,3,3] x) => (float[] loss) <float[3,2,3,3,3,3] w = ...> {
  [conv] y = Conv <kernel_shape = [3, 3, 3, 3], pads = [1, 1, 1, 1, 1, 1, 1, 1]> (x, w)
  loss = ReduceSum <keepdims = 0> (y)
})", ParseOptions{.allow_elided = true});
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  testing::WriteFileOrDie(dir.File("conv4d.onnx"), GraphToOnnx(**g).SerializeAsString());
  CommandResult r = Dscompile(ShellQuote(dir.File("conv4d.onnx")) + " --config " + ShellQuote(kConfigs + "/gpt.json") +
                              " -q -o " + ShellQuote(dir.File("p")));
  EXPECT_NE(r.rc, 0);
  // the Conv and its gradient (w trains)
  EXPECT_NE(r.output.find("2 nodes have no CPU kernel for their attributes"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("'conv' (Conv)"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir.File("p")));
}

// configs/zero3_offload.json (optimizer states and parameters offloaded to "cpu") compiles for CPU
// ranks, whose host memory is where both live already: each offload warns so, and the plan places
// the same bytes in memory as the config without the two offload sections. With the optimizer
// offloaded alone, a CPU rank's places are still the plain plan's, and the report adds what a GPU
// rank moves to host memory.
TEST(DscompileCli, OffloadToCpuCompilesToThePlanWithoutOffload) {
  testing::TempDir dir;
  json cfg = json::parse(std::ifstream(kConfigs + "/zero3_offload.json"), nullptr, true, /*ignore_comments=*/true);
  CommandResult r = Dscompile(ShellQuote(kModels + "/mlp/mlp.onnx") + " --config " +
                              ShellQuote(kConfigs + "/zero3_offload.json") + " -o " + ShellQuote(dir.File("off")));
  ASSERT_EQ(r.rc, 0) << r.output;
  for (const char* needle : {"zero_optimization.offload_param.device: \"cpu\": on CPU ranks the parameters already live",
                             "zero_optimization.offload_optimizer.device: \"cpu\": on CPU ranks the optimizer states"})
    EXPECT_NE(r.output.find(needle), std::string::npos) << needle << "\n" << r.output;
  cfg["zero_optimization"].erase("offload_param");
  cfg["zero_optimization"].erase("offload_optimizer");
  testing::WriteFileOrDie(dir.File("plain.json"), cfg.dump());
  ASSERT_EQ(Dscompile(ShellQuote(kModels + "/mlp/mlp.onnx") + " --config " + ShellQuote(dir.File("plain.json")) +
                      " -q -o " + ShellQuote(dir.File("plain"))).rc, 0);
  auto memory = [](const std::string& plan) {
    CommandResult j = testing::RunCommand(ShellQuote(DSINSPECT_PATH) + " --json " + ShellQuote(plan), false);
    EXPECT_EQ(j.rc, 0) << j.output;
    return json::parse(j.output)["memory"]["places"];
  };
  EXPECT_EQ(memory(dir.File("off")), memory(dir.File("plain")));
  cfg["zero_optimization"]["offload_optimizer"] = {{"device", "cpu"}};
  testing::WriteFileOrDie(dir.File("opt.json"), cfg.dump());
  ASSERT_EQ(Dscompile(ShellQuote(kModels + "/mlp/mlp.onnx") + " --config " + ShellQuote(dir.File("opt.json")) +
                      " -q -o " + ShellQuote(dir.File("opt"))).rc, 0);
  CommandResult j = testing::RunCommand(ShellQuote(DSINSPECT_PATH) + " --json " + ShellQuote(dir.File("opt")), false);
  ASSERT_EQ(j.rc, 0) << j.output;
  const json opt = json::parse(j.output)["memory"];
  EXPECT_EQ(opt["places"], memory(dir.File("plain")));
  EXPECT_GT(opt["gpu_rank"]["places"]["host"].get<int64_t>(), opt["optimizer_states"].get<int64_t>());
  EXPECT_LT(opt["gpu_rank"]["places"]["device"].get<int64_t>(), opt["places"]["device"].get<int64_t>());
}

// A config DeepSpeed accepts is explained even when dscompile cannot compile it: the resolution on
// stdout, every setting the compile refuses as a warning naming its JSON path; compiling it fails
// with the same paths, and --lr-schedule (what dsrun would do) refuses it too.
TEST(DscompileCli, ExplainConfigListsWhatTheCompileRefuses) {
  testing::TempDir dir;
  // configs/zero3_offload.json with its parameters offloaded to NVMe, without the swap files' folder.
  json cfg = json::parse(std::ifstream(kConfigs + "/zero3_offload.json"), nullptr, true, /*ignore_comments=*/true);
  cfg["zero_optimization"]["offload_param"] = {{"device", "nvme"}};
  testing::WriteFileOrDie(dir.File("nvme.json"), cfg.dump());
  const std::string config = ShellQuote(dir.File("nvme.json"));
  CommandResult out = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " --config " + config + " --explain-config", false);
  ASSERT_EQ(out.rc, 0) << out.output;
  const json resolved = json::parse(out.output, nullptr, false);
  ASSERT_FALSE(resolved.is_discarded()) << out.output;
  EXPECT_EQ(resolved["zero_optimization"]["offload_optimizer"]["device"], "cpu");
  EXPECT_EQ(resolved["optimizer"]["type"], "adamw");
  CommandResult all = Dscompile("--config " + config + " --explain-config");
  EXPECT_NE(all.output.find("dscompile: warning: will be refused at compile time: "
                            "zero_optimization.offload_param.nvme_path: device \"nvme\" needs the folder of the swap "
                            "files\n"),
            std::string::npos)
      << all.output;
  CommandResult compile = Dscompile(ShellQuote(kModels + "/mlp/mlp.onnx") + " --config " + config + " -q -o " +
                                    ShellQuote(dir.File("p")));
  EXPECT_EQ(compile.rc, 1) << compile.output;
  EXPECT_NE(compile.output.find("\n  zero_optimization.offload_param.nvme_path: device \"nvme\" needs the folder of "
                                "the swap files [Unsupported]"),
            std::string::npos)
      << compile.output;
  EXPECT_FALSE(fs::exists(dir.File("p")));
  CommandResult lr = Dscompile("--config " + config + " --lr-schedule 3");
  EXPECT_EQ(lr.rc, 1) << lr.output;
  EXPECT_NE(lr.output.find("zero_optimization.offload_param.nvme_path"), std::string::npos) << lr.output;
}

TEST(DscompileCli, ExplainConfigAndLrSchedule) {
  CommandResult r = Dscompile("--config " + ShellQuote(kConfigs + "/gpt.json") + " --explain-config");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("\"gradient_accumulation_steps\": 4"), std::string::npos);
  // WarmupLR (log warm-up over 20 steps to 3e-3): steps 1 and 2 use iteration -1/0 (0.0);
  // step 3 uses iteration 1: 3e-3 * ln(2) / ln(20).
  r = Dscompile("--config " + ShellQuote(kConfigs + "/gpt.json") + " --lr-schedule 3");
  ASSERT_EQ(r.rc, 0) << r.output;
  double lr3 = 0;
  ASSERT_EQ(std::sscanf(r.output.c_str(), "1 %*f\n2 %*f\n3 %lf", &lr3), 1) << r.output;
  EXPECT_NEAR(lr3, 3e-3 * std::log(2.0) / std::log(20.0), 1e-12);
}

}  // namespace
}  // namespace dsc

namespace dsc {
namespace {

// `--config /dev/zero` read until memory ran out; a FIFO would block.
TEST(DscompileCli, ConfigsMustBeRegularFiles) {
  testing::TempDir dir;
  ASSERT_EQ(mkfifo(dir.File("fifo.json").c_str(), 0600), 0);
  for (const std::string& config : {std::string("/dev/zero"), dir.File("fifo.json")}) {
    testing::CommandResult r =
        testing::RunCommand("timeout 20 " + testing::ShellQuote(DSCOMPILE_PATH) + " --config " + testing::ShellQuote(config) + " --explain-config");
    EXPECT_EQ(r.rc, 1) << r.output;
    EXPECT_EQ(r.output, "dscompile: error: " + config + ": not a regular file, so not a DeepSpeed config\n");
  }
}

// Output that cannot be written is an error naming it, and -o replaces only regular files.
TEST(DscompileCli, OutputErrorsAreReported) {
  testing::TempDir dir;
  const std::string config = testing::ShellQuote(DSC_SOURCE_DIR "/configs/gpt.json");
  testing::CommandResult r = testing::RunCommand("{ " + testing::ShellQuote(DSCOMPILE_PATH) + " --config " + config +
                                                 " --explain-config > /dev/full; }");
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("dscompile: error: cannot write to standard output"), std::string::npos) << r.output;

  const std::string target = dir.File("target");
  testing::WriteFileOrDie(target, "keep");
  fs::create_symlink(target, dir.File("link"));
  r = Dscompile(GptArgs(dir.File("link")) + " -q");
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find(dir.File("link") + ": it is a symbolic link; refusing"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::is_symlink(dir.File("link")));
  EXPECT_EQ(testing::ReadFileOrDie(target), "keep");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 2);  // no temp file left

  // A dump over a FIFO would block: refused. (Writing dumps to a full disk fails the same way.)
  fs::create_directory(dir.File("dumps"));
  ASSERT_EQ(mkfifo(dir.File("dumps/00-input.onnx.txt").c_str(), 0600), 0);
  r = testing::RunCommand("timeout 60 " + testing::ShellQuote(DSCOMPILE_PATH) + " " +
                          GptArgs(dir.File("p.dsplan")) + " -q --dump-dir " + testing::ShellQuote(dir.File("dumps")));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("--dump-dir: cannot write " + dir.File("dumps/00-input.onnx.txt") +
                          ": it is a FIFO; refusing to replace anything but a regular file"),
            std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace dsc
