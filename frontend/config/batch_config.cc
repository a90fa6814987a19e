#include "frontend/config/batch_config.h"

#include <cmath>
#include <optional>

namespace dsc {
namespace {

constexpr const char* kTB = "train_batch_size";
constexpr const char* kMB = "train_micro_batch_size_per_gpu";
constexpr const char* kGAS = "gradient_accumulation_steps";

StatusOr<std::optional<int64_t>> ReadBatchKey(ParseContext& ctx, const nlohmann::json& config, const char* key) {
  if (!config.contains(key)) return std::optional<int64_t>();
  const nlohmann::json& v = config.at(key);
  if (v.is_null()) return std::optional<int64_t>();
  if (v.is_string() && v.get<std::string>() == "auto") {
    ctx.auto_keys.push_back(key);
    return std::optional<int64_t>();
  }
  if (!v.is_number()) {
    return ctx.Error(DsErrorKind::kTypeError, key, "expected a positive integer or \"auto\", got " + ShortJson(v));
  }
  double d = v.get<double>();
  if (!v.is_number_integer() && (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9e18)) {
    return ctx.Error(DsErrorKind::kAssertionError, key, "expected a whole number, got " + ShortJson(v));
  }
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    return ctx.Error(DsErrorKind::kAssertionError, key, "is too large: " + ShortJson(v));
  }
  int64_t n = v.is_number_integer() ? v.get<int64_t>() : static_cast<int64_t>(d);
  return std::optional<int64_t>(n);
}

Status CheckPositive(ParseContext& ctx, const char* key, int64_t value) {
  if (value > 0) return Status::OK();
  return ctx.Error(DsErrorKind::kAssertionError, key, StrCat("must be greater than 0, got ", value));
}

bool Mul(int64_t a, int64_t b, int64_t* out) { return !__builtin_mul_overflow(a, b, out); }

}  // namespace

StatusOr<BatchSizes> ResolveBatchSizes(ParseContext& ctx, const nlohmann::json& config, int64_t world) {
  ASSIGN_OR_RETURN(std::optional<int64_t> tb, ReadBatchKey(ctx, config, kTB));
  ASSIGN_OR_RETURN(std::optional<int64_t> mb, ReadBatchKey(ctx, config, kMB));
  ASSIGN_OR_RETURN(std::optional<int64_t> gas, ReadBatchKey(ctx, config, kGAS));
  // DeepSpeed derives the missing key before it asserts that all three are positive, and divides by a
  // zero micro batch or accumulation count on the way.
  if (tb && !gas && mb && *mb == 0)
    return ctx.Error(DsErrorKind::kZeroDivisionError, kMB, "is 0, and gradient_accumulation_steps = train_batch_size // 0");
  if (tb && !mb && gas && *gas == 0)
    return ctx.Error(DsErrorKind::kZeroDivisionError, kGAS,
                     "is 0, and train_micro_batch_size_per_gpu = train_batch_size // world size // 0");
  if (tb) RETURN_IF_ERROR(CheckPositive(ctx, kTB, *tb));
  if (mb) RETURN_IF_ERROR(CheckPositive(ctx, kMB, *mb));
  if (gas) RETURN_IF_ERROR(CheckPositive(ctx, kGAS, *gas));
  if (!tb && !mb) {
    return ctx.Error(DsErrorKind::kAssertionError, "",
                     std::string("either train_batch_size or train_micro_batch_size_per_gpu needs to be given") +
                         (gas ? " (gradient_accumulation_steps alone does not fix the batch)" : "") +
                         " (\"auto\" counts as not given)");
  }
  BatchSizes b;
  int64_t per_step = 0;  // micro × world, or gas × world
  const std::string world_text = StrCat(world);
  if (tb && mb && gas) {
    int64_t product = 0;
    if (!Mul(*mb, *gas, &product) || !Mul(product, world, &product) || product != *tb) {
      return ctx.Error(DsErrorKind::kAssertionError, kTB,
                       StrCat("train_batch_size must equal train_micro_batch_size_per_gpu × gradient_accumulation_steps "
                              "× world size, but ", *tb, " != ", *mb, " × ", *gas, " × ", world, " = ",
                              static_cast<long double>(*mb) * (*gas) * world));
    }
    b = {*tb, *mb, *gas};
  } else if (tb && mb) {
    if (!Mul(*mb, world, &per_step) || *tb % per_step != 0) {
      return ctx.Error(DsErrorKind::kAssertionError, kTB,
                       StrCat(*tb, " is not divisible by train_micro_batch_size_per_gpu × world size = ", *mb, " × ",
                              world, " = ", per_step, "; DeepSpeed would floor gradient_accumulation_steps to ",
                              *tb, " // ", *mb, " // ", world, " = ", (*tb / *mb) / world, " and then fail"));
    }
    b = {*tb, *mb, *tb / per_step};
  } else if (tb && gas) {
    if (!Mul(*gas, world, &per_step) || *tb % per_step != 0) {
      return ctx.Error(DsErrorKind::kAssertionError, kTB,
                       StrCat(*tb, " is not divisible by gradient_accumulation_steps × world size = ", *gas, " × ",
                              world, " = ", per_step, "; DeepSpeed would floor train_micro_batch_size_per_gpu to ",
                              *tb, " // ", world, " // ", *gas, " = ", (*tb / world) / *gas, " and then fail"));
    }
    b = {*tb, *tb / per_step, *gas};
  } else if (mb && gas) {
    int64_t total = 0;
    if (!Mul(*mb, *gas, &total) || !Mul(total, world, &total)) {
      return ctx.Error(DsErrorKind::kAssertionError, kMB, "train_batch_size would overflow");
    }
    b = {total, *mb, *gas};
  } else if (tb) {
    if (*tb % world != 0) {
      return ctx.Error(DsErrorKind::kAssertionError, kTB,
                       StrCat(*tb, " is not divisible by the world size ", world,
                              "; DeepSpeed would floor train_micro_batch_size_per_gpu to ", *tb, " // ", world,
                              " = ", *tb / world, " and then fail"));
    }
    b = {*tb, *tb / world, 1};
  } else {
    int64_t total = 0;
    if (!Mul(*mb, world, &total)) return ctx.Error(DsErrorKind::kAssertionError, kMB, "train_batch_size would overflow");
    b = {total, *mb, 1};
  }
  return b;
}

}  // namespace dsc
