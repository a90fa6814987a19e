// Parsing PyTorch's parameter list from model metadata.
#include "ir/torch_parameters.h"

#include <nlohmann/json.hpp>

namespace dsc {
namespace {

StatusOr<std::vector<std::string>> InitializerList(const nlohmann::json& j, const char* field) {
  std::vector<std::string> out;
  if (!j.contains(field)) return out;
  const nlohmann::json& list = j.at(field);
  if (!list.is_array()) return InvalidArgument("\"", field, "\" must be an array");
  for (size_t i = 0; i < list.size(); ++i) {
    const nlohmann::json& e = list[i];
    if (e.is_string()) {
      out.push_back(e.get<std::string>());
    } else if (e.is_object() && e.contains("initializer") && e.at("initializer").is_string()) {
      out.push_back(e.at("initializer").get<std::string>());
    } else {
      return InvalidArgument("\"", field, "\"[", i, "] must be an object with a string \"initializer\"");
    }
  }
  return out;
}

}  // namespace

StatusOr<TorchParameters> ParseTorchParameters(const std::string& json_text) {
  TorchParameters p;
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  auto fail = [](const Status& s) { return InvalidArgument("metadata_props \"", kTorchParametersKey, "\": ", s.message()); };
  if (j.is_discarded() || !j.is_object()) return fail(InvalidArgument("not a JSON object"));
  if (!j.contains("version") || !j.at("version").is_number_integer() || j.at("version").get<int64_t>() != 1)
    return fail(InvalidArgument("\"version\" must be 1 (written by tools/export_for_training.py)"));
  if (!j.contains("trainable")) return fail(InvalidArgument("has no \"trainable\" list"));
  p.present = true;
  if (j.contains("source") && j.at("source").is_string()) p.source = j.at("source").get<std::string>();
  else if (j.contains("exporter") && j.at("exporter").is_string()) p.source = j.at("exporter").get<std::string>();
  for (auto [field, dest] : {std::pair{"trainable", &p.trainable}, {"frozen", &p.frozen}}) {
    StatusOr<std::vector<std::string>> list = InitializerList(j, field);
    if (!list.ok()) return fail(list.status());
    *dest = std::move(*list);
  }
  for (auto [field, dest] : {std::pair{"missing", &p.missing}, {"tied", &p.tied}, {"unread", &p.unread}}) {
    if (!j.contains(field)) continue;
    const nlohmann::json& list = j.at(field);
    if (!list.is_array()) return fail(InvalidArgument("\"", field, "\" must be an array of names"));
    for (const auto& e : list) {
      if (!e.is_string()) return fail(InvalidArgument("\"", field, "\" must be an array of names"));
      dest->push_back(e.get<std::string>());
    }
  }
  return p;
}

}  // namespace dsc
