// dsrun: trains a plan compiled by dscompile.
#include <iomanip>
#include <iostream>

#include "backend/plan_file.h"
#include "runtime/trainer.h"
#include "tools/cli_args.h"

namespace dsc {
namespace {

constexpr const char* kUsage = R"(usage: dsrun PLAN --data DIR [--steps N | --epochs N] [options]

Trains PLAN (written by dscompile) on DIR, which holds one NAME.npy per model input with the
samples along dim 0. A step consumes train_batch_size samples; without --no-shuffle the order is
a seeded permutation per epoch.

options:
  --data DIR        training data (required)
  --steps N         optimizer steps to run
  --epochs N        epochs to run (default: 1 when --steps is not given)
  --no-shuffle      samples in file order
  --seed S          data-order and dropout seed (default: the config's "seed", 42)
  --metrics FILE    one JSON object per optimizer step (step, loss, lr, grad_norm, loss_scale,
                    skipped, samples_per_s, step_time_s, elapsed_s, epoch)
  --threads T       CPU threads for kernels and BLAS (default: all cores)
  -q, --quiet       no progress lines
  -h, --help        this text
)";

const std::vector<FlagSpec> kFlags = {{"--data", true},     {"--steps", true},   {"--epochs", true},
                                      {"--no-shuffle", false}, {"--seed", true},  {"--metrics", true},
                                      {"--threads", true},  {"-q", false},       {"--quiet", false},
                                      {"-h", false},        {"--help", false}};

Status Run(const ParsedArgs& args) {
  if (args.positional.size() != 1)
    return InvalidArgument(args.positional.empty() ? "no plan given" : "more than one plan given", " (see --help)");
  if (!args.Has("--data")) return InvalidArgument("--data DIR is required (see --help)");
  if (args.Has("--steps") && args.Has("--epochs")) return InvalidArgument("give --steps or --epochs, not both");
  TrainOptions opts;
  opts.data_dir = args.Get("--data");
  ASSIGN_OR_RETURN(opts.steps, args.GetInt("--steps", -1));
  ASSIGN_OR_RETURN(opts.epochs, args.GetInt("--epochs", -1));
  if (args.Has("--steps") && opts.steps < 1) return InvalidArgument("--steps must be at least 1");
  if (args.Has("--epochs") && opts.epochs < 1) return InvalidArgument("--epochs must be at least 1");
  opts.shuffle = !args.Has("--no-shuffle");
  if (args.Has("--seed")) {
    ASSIGN_OR_RETURN(int64_t seed, args.GetInt("--seed", 0));
    opts.seed = static_cast<uint64_t>(seed);
  }
  opts.metrics_path = args.Get("--metrics");
  ASSIGN_OR_RETURN(int64_t threads, args.GetInt("--threads", 0));
  if (threads < 0) return InvalidArgument("--threads must be >= 0");
  opts.threads = static_cast<int>(threads);
  const bool quiet = args.Has("-q") || args.Has("--quiet");
  opts.progress = quiet ? nullptr : &std::cerr;
  ASSIGN_OR_RETURN(Plan plan, ReadPlan(args.positional[0]));
  ASSIGN_OR_RETURN(TrainSummary s, Train(plan, opts));
  if (!quiet)
    std::cerr << "dsrun: " << s.steps << " steps in " << std::fixed << std::setprecision(2) << s.seconds
              << " s; loss " << std::setprecision(4) << s.first_loss << " -> " << s.last_loss << "\n";
  return Status::OK();
}

}  // namespace
}  // namespace dsc

int main(int argc, char** argv) {
  using namespace dsc;
  StatusOr<ParsedArgs> args = ParseArgs(argc, argv, kFlags);
  if (!args.ok()) {
    std::cerr << "dsrun: " << args.status().message() << "\n";
    return 2;
  }
  if (args->Has("-h") || args->Has("--help")) {
    std::cout << kUsage;
    return 0;
  }
  Status s = Run(*args);
  if (!s.ok()) {
    std::cerr << "dsrun: error: " << s.message() << "\n";
    return 1;
  }
  return 0;
}
