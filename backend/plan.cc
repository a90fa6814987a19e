// Plan helpers.
#include "backend/plan.h"

namespace dsc {

const PlanProgram* Plan::FindProgram(const std::string& name) const {
  for (const PlanProgram& p : programs)
    if (p.name == name) return &p;
  return nullptr;
}

}  // namespace dsc
