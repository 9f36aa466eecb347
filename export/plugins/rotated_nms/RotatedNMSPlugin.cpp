// IPluginV3 adapter: TensorRT bookkeeping only; the NMS runs in RotatedNMSKernels.cu. Also the library's
// entry points (getCreators, setLoggerFinder) and its load-time registration (end of file).
#include "RotatedNMSPlugin.h"

#include <dlfcn.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <iostream>
#include <mutex>
#include <string>

using namespace nvinfer1;

namespace rdet {
namespace trt {
namespace {

constexpr char kPluginName[] = "RotatedNMS";
constexpr char kPluginVersion[] = "1";
constexpr char kPluginNamespace[] = "rdet";

struct FieldSpec {
  char const* name;
  PluginFieldType type;
};

// The plugin fields, i.e. the ONNX node attributes (besides plugin_version / plugin_namespace, which
// the ONNX parser reads to find this creator). Must equal export/plugins/rotated_nms/plugin_fields.json:
// tests/test_export.py parses the block between the two markers.
// rdet:plugin-fields-begin
constexpr FieldSpec kFields[] = {
    {"iou_threshold", PluginFieldType::kFLOAT32},
    {"score_threshold", PluginFieldType::kFLOAT32},
    {"max_det", PluginFieldType::kINT32},
    {"pre_nms_topk", PluginFieldType::kINT32},
    {"class_agnostic", PluginFieldType::kINT32},
};
// rdet:plugin-fields-end
constexpr int32_t kNbFields = static_cast<int32_t>(sizeof(kFields) / sizeof(kFields[0]));

// ------------------------------------------------------------------------------------------ logging
std::mutex gLoggerMutex;
ILoggerFinder* gLoggerFinder = nullptr;

void logError(std::string const& msg) noexcept {
  std::string const text = std::string("[rdet RotatedNMS] ") + msg;
  ILogger* logger = nullptr;
  {
    std::lock_guard<std::mutex> lock(gLoggerMutex);
    if (gLoggerFinder != nullptr) logger = gLoggerFinder->findLogger();
  }
  if (logger != nullptr) {
    logger->log(ILogger::Severity::kERROR, text.c_str());
  } else {
    std::cerr << text << std::endl;
  }
}

NMSShape shapeOf(Dims const& scores) {
  return NMSShape{static_cast<int32_t>(scores.d[0]), static_cast<int32_t>(scores.d[1]),
                  static_cast<int32_t>(scores.d[2])};
}

// Read one numeric plugin field (the ONNX parser gives kFLOAT32 / kINT32; 64-bit variants accepted too).
bool readNumber(PluginField const& f, double& out) {
  if (f.data == nullptr || f.length < 1) return false;
  switch (f.type) {
    case PluginFieldType::kFLOAT32: out = *static_cast<float const*>(f.data); return true;
    case PluginFieldType::kFLOAT64: out = *static_cast<double const*>(f.data); return true;
    case PluginFieldType::kINT32: out = *static_cast<int32_t const*>(f.data); return true;
    case PluginFieldType::kINT64: out = static_cast<double>(*static_cast<int64_t const*>(f.data)); return true;
    default: return false;
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------- plugin
RotatedNMSPlugin::RotatedNMSPlugin(NMSConfig config) : mConfig(config), mClassAgnostic(config.class_agnostic ? 1 : 0) {
  buildSerializedFields();
}

RotatedNMSPlugin::RotatedNMSPlugin(RotatedNMSPlugin const& other)
    : IPluginV3(), IPluginV3OneCore(), IPluginV3OneBuild(), IPluginV3OneRuntime(),
      mConfig(other.mConfig), mClassAgnostic(other.mClassAgnostic) {
  buildSerializedFields();  // the field pointers must point at this object's members
}

void RotatedNMSPlugin::buildSerializedFields() {
  mSerialized.clear();
  mSerialized.emplace_back(kFields[0].name, &mConfig.iou_threshold, kFields[0].type, 1);
  mSerialized.emplace_back(kFields[1].name, &mConfig.score_threshold, kFields[1].type, 1);
  mSerialized.emplace_back(kFields[2].name, &mConfig.max_det, kFields[2].type, 1);
  mSerialized.emplace_back(kFields[3].name, &mConfig.pre_nms_topk, kFields[3].type, 1);
  mSerialized.emplace_back(kFields[4].name, &mClassAgnostic, kFields[4].type, 1);
  mSerializedCollection.nbFields = static_cast<int32_t>(mSerialized.size());
  mSerializedCollection.fields = mSerialized.data();
}

IPluginCapability* RotatedNMSPlugin::getCapabilityInterface(PluginCapabilityType type) noexcept {
  switch (type) {
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
  }
  return nullptr;
}

IPluginV3* RotatedNMSPlugin::clone() noexcept {
  try {
    return new RotatedNMSPlugin(*this);
  } catch (std::exception const& e) {
    logError(std::string("clone failed: ") + e.what());
  }
  return nullptr;
}

char const* RotatedNMSPlugin::getPluginName() const noexcept { return kPluginName; }
char const* RotatedNMSPlugin::getPluginVersion() const noexcept { return kPluginVersion; }
char const* RotatedNMSPlugin::getPluginNamespace() const noexcept { return kPluginNamespace; }

int32_t RotatedNMSPlugin::getNbOutputs() const noexcept { return 4; }

int32_t RotatedNMSPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes,
                                             int32_t nbInputs) const noexcept {
  if (nbInputs != 2 || nbOutputs != 4) return -1;
  if (inputTypes[0] != DataType::kFLOAT || inputTypes[1] != DataType::kFLOAT) {
    // fp16 boxes move corners by up to 0.25 px at 1024 px and change the kept set: float32 only.
    logError("boxes and scores must be float32 (fp16 inputs are refused: cast them to float32 before the node)");
    return -1;
  }
  outputTypes[0] = DataType::kINT32;  // num_dets
  outputTypes[1] = DataType::kFLOAT;  // det_boxes
  outputTypes[2] = DataType::kFLOAT;  // det_scores
  outputTypes[3] = DataType::kINT32;  // det_classes
  return 0;
}

int32_t RotatedNMSPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
                                          int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs,
                                          IExprBuilder& exprBuilder) noexcept {
  if (nbInputs != 2 || nbOutputs != 4 || inputs[0].nbDims != 3 || inputs[1].nbDims != 3) {
    logError("expects inputs boxes [B, N, 5] and scores [B, N, C] and 4 outputs");
    return -1;
  }
  if (inputs[0].d[2]->isConstant() && inputs[0].d[2]->getConstantValue() != 5) {
    logError("boxes must have shape [B, N, 5] (cx, cy, w, h, angle)");
    return -1;
  }
  IDimensionExpr const* batch = inputs[0].d[0];
  IDimensionExpr const* maxDet = exprBuilder.constant(mConfig.max_det);
  outputs[0].nbDims = 2;
  outputs[0].d[0] = batch;
  outputs[0].d[1] = exprBuilder.constant(1);
  outputs[1].nbDims = 3;
  outputs[1].d[0] = batch;
  outputs[1].d[1] = maxDet;
  outputs[1].d[2] = exprBuilder.constant(5);
  outputs[2].nbDims = 2;
  outputs[2].d[0] = batch;
  outputs[2].d[1] = maxDet;
  outputs[3].nbDims = 2;
  outputs[3].d[0] = batch;
  outputs[3].d[1] = maxDet;
  return 0;
}

bool RotatedNMSPlugin::supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                                 int32_t nbOutputs) noexcept {
  if (nbInputs != 2 || nbOutputs != 4 || pos < 0 || pos >= 6) return false;
  PluginTensorDesc const& d = inOut[pos].desc;
  if (d.format != TensorFormat::kLINEAR) return false;
  switch (pos) {
    case 0:  // boxes
    case 1:  // scores
    case 3:  // det_boxes
    case 4:  // det_scores
      return d.type == DataType::kFLOAT;  // never fp16: see getOutputDataTypes
    case 2:  // num_dets
    case 5:  // det_classes
      return d.type == DataType::kINT32;
    default: return false;
  }
}

int32_t RotatedNMSPlugin::configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs,
                                          DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept {
  if (nbInputs != 2 || nbOutputs != 4) return -1;
  if (in[0].desc.type != DataType::kFLOAT || in[1].desc.type != DataType::kFLOAT) {
    logError("boxes and scores must be float32");
    return -1;
  }
  Dims const& b = in[0].desc.dims;
  Dims const& s = in[1].desc.dims;
  if (b.nbDims != 3 || s.nbDims != 3 || (b.d[2] != -1 && b.d[2] != 5)) {
    logError("expects boxes [B, N, 5] and scores [B, N, C]");
    return -1;
  }
  for (int32_t i = 0; i < 2; ++i) {
    if (b.d[i] != -1 && s.d[i] != -1 && b.d[i] != s.d[i]) {
      logError("boxes and scores disagree on the batch or box count");
      return -1;
    }
  }
  return 0;
}

size_t RotatedNMSPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                                          DynamicPluginTensorDesc const* /*outputs*/,
                                          int32_t /*nbOutputs*/) const noexcept {
  if (nbInputs != 2 || inputs[1].max.nbDims != 3) return 0;
  // The largest shape of the optimisation profile: workspace_size never decreases with B, N or C, so this
  // covers every shape enqueue can see.
  return workspace_size(shapeOf(inputs[1].max), mConfig);
}

int32_t RotatedNMSPlugin::onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* /*out*/,
                                        int32_t nbOutputs) noexcept {
  if (nbInputs != 2 || nbOutputs != 4) return -1;
  return in[0].dims.d[0] == in[1].dims.d[0] && in[0].dims.d[1] == in[1].dims.d[1] && in[0].dims.d[2] == 5 ? 0 : -1;
}

int32_t RotatedNMSPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
                                  void const* const* inputs, void* const* outputs, void* workspace,
                                  cudaStream_t stream) noexcept {
  NMSShape const shape = shapeOf(inputDesc[1].dims);
  if (char const* why = check_problem(shape, mConfig)) {
    logError(std::string("enqueue: ") + why);
    return -1;
  }
  // TensorRT does not tell enqueue the workspace size; it allocated getWorkspaceSize() for the profile's
  // largest shape, which is >= workspace_size(shape) because that size is monotone in the shape.
  cudaError_t const err = rotated_nms(shape, mConfig, static_cast<float const*>(inputs[0]),
                                      static_cast<float const*>(inputs[1]), static_cast<int32_t*>(outputs[0]),
                                      static_cast<float*>(outputs[1]), static_cast<float*>(outputs[2]),
                                      static_cast<int32_t*>(outputs[3]), workspace, workspace_size(shape, mConfig),
                                      stream);
  if (err != cudaSuccess) {
    logError(std::string("enqueue failed: ") + cudaGetErrorString(err));
    return -1;
  }
  return 0;
}

IPluginV3* RotatedNMSPlugin::attachToContext(IPluginResourceContext* /*context*/) noexcept { return clone(); }

PluginFieldCollection const* RotatedNMSPlugin::getFieldsToSerialize() noexcept { return &mSerializedCollection; }

// ------------------------------------------------------------------------------------------ creator
RotatedNMSPluginCreator::RotatedNMSPluginCreator() {
  for (int32_t i = 0; i < kNbFields; ++i) mFields.emplace_back(kFields[i].name, nullptr, kFields[i].type, 1);
  mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
  mFieldCollection.fields = mFields.data();
}

char const* RotatedNMSPluginCreator::getPluginName() const noexcept { return kPluginName; }
char const* RotatedNMSPluginCreator::getPluginVersion() const noexcept { return kPluginVersion; }
char const* RotatedNMSPluginCreator::getPluginNamespace() const noexcept { return kPluginNamespace; }
PluginFieldCollection const* RotatedNMSPluginCreator::getFieldNames() noexcept { return &mFieldCollection; }

IPluginV3* RotatedNMSPluginCreator::createPlugin(char const* /*name*/, PluginFieldCollection const* fc,
                                                 TensorRTPhase /*phase*/) noexcept {
  try {
    if (fc == nullptr) {
      logError("createPlugin: no plugin fields");
      return nullptr;
    }
    double values[kNbFields];
    bool seen[kNbFields] = {};
    for (int32_t i = 0; i < fc->nbFields; ++i) {
      PluginField const& f = fc->fields[i];
      for (int32_t j = 0; j < kNbFields; ++j) {
        if (f.name != nullptr && std::strcmp(f.name, kFields[j].name) == 0) {
          if (!readNumber(f, values[j])) {
            logError(std::string("field ") + f.name + " has an unsupported type or no data");
            return nullptr;
          }
          seen[j] = true;
        }
      }
    }
    for (int32_t j = 0; j < kNbFields; ++j) {
      if (!seen[j]) {  // no silent defaults: the ONNX node must carry every attribute
        logError(std::string("missing field ") + kFields[j].name);
        return nullptr;
      }
    }
    // NaN would make every comparison false; the kernels take float32, so check the values as float32.
    if (!std::isfinite(static_cast<float>(values[0])) || !std::isfinite(static_cast<float>(values[1]))) {
      logError("iou_threshold and score_threshold must be finite numbers");
      return nullptr;
    }
    if (values[2] != std::floor(values[2]) || values[3] != std::floor(values[3]) || values[2] < 1 ||
        values[3] < 1 || values[3] > kMaxPreNmsTopk || values[2] > INT32_MAX) {
      logError("max_det must be an integer >= 1 and pre_nms_topk an integer in [1, " +
               std::to_string(kMaxPreNmsTopk) + "]");
      return nullptr;
    }
    NMSConfig config{};
    config.iou_threshold = static_cast<float>(values[0]);
    config.score_threshold = static_cast<float>(values[1]);
    config.max_det = static_cast<int32_t>(values[2]);
    config.pre_nms_topk = static_cast<int32_t>(values[3]);
    config.class_agnostic = values[4] != 0.0;
    return new RotatedNMSPlugin(config);
  } catch (std::exception const& e) {
    logError(std::string("createPlugin failed: ") + e.what());
  }
  return nullptr;
}

}  // namespace trt
}  // namespace rdet

// ------------------------------------------------------------------------- library entry points
// Two ways in, one registration per process:
// * IPluginRegistry::loadLibrary (Python: trt.get_plugin_registry().load_library(path); trtexec
//   --dynamicPlugins) dlopens the library, calls getCreators and registers what it returns; it fails when
//   any of them is already registered.
// * A plain dlopen (Triton's `plugins=`, trtexec --staticPlugins, ctypes.CDLL) or LD_PRELOAD: the static
//   initializer below registers the creator in namespace "rdet" with TensorRT's registry, when a TensorRT
//   runtime is already in the process (the library neither links nor loads libnvinfer itself, so it loads
//   in any process; LD_PRELOAD into a process that loads TensorRT only later, e.g. tritonserver, needs the
//   library built with -DRDET_LINK_NVINFER=ON so that libnvinfer comes first).
// When loadLibrary dlopens the library, the static initializer has just registered the creator, so
// getCreators withdraws that registration before handing the creator to loadLibrary.
namespace rdet {
namespace trt {
namespace {

#define RDET_STR2(x) #x
#define RDET_STR(x) RDET_STR2(x)

RotatedNMSPluginCreator& theCreator() {
  static RotatedNMSPluginCreator creator;
  return creator;
}

std::mutex gRegistryMutex;
IPluginRegistry* gLoadTimeRegistry = nullptr;  // the registry the static initializer registered with

using GetPluginRegistryFn = IPluginRegistry* (*)();

// TensorRT's getPluginRegistry from a TensorRT runtime already loaded in this process, or nullptr.
GetPluginRegistryFn findGetPluginRegistry() {
  if (void* f = dlsym(RTLD_DEFAULT, "getPluginRegistry")) return reinterpret_cast<GetPluginRegistryFn>(f);
  // TensorRT loaded with RTLD_LOCAL (Python bindings, Triton's backend): find it by soname, never load it.
  static char const* const kLibraries[] = {"libnvinfer.so." RDET_STR(NV_TENSORRT_MAJOR),
                                           "libnvinfer_lean.so." RDET_STR(NV_TENSORRT_MAJOR),
                                           "libnvinfer_dispatch.so." RDET_STR(NV_TENSORRT_MAJOR), "libnvinfer.so"};
  for (char const* name : kLibraries) {
    void* handle = dlopen(name, RTLD_LAZY | RTLD_NOLOAD);
    if (handle == nullptr) continue;
    void* f = dlsym(handle, "getPluginRegistry");
    dlclose(handle);  // drops only the reference RTLD_NOLOAD added
    if (f != nullptr) return reinterpret_cast<GetPluginRegistryFn>(f);
  }
  return nullptr;
}

struct LoadTimeRegistration {
  LoadTimeRegistration() noexcept {
    try {
      GetPluginRegistryFn get = findGetPluginRegistry();
      IPluginRegistry* registry = get != nullptr ? get() : nullptr;
      if (registry == nullptr) return;  // no TensorRT yet: loadLibrary (getCreators) remains the way in
      std::lock_guard<std::mutex> lock(gRegistryMutex);
      if (registry->getCreator(kPluginName, kPluginVersion, kPluginNamespace) != nullptr) return;  // another copy
      if (registry->registerCreator(theCreator(), kPluginNamespace)) {
        gLoadTimeRegistry = registry;
      } else {
        logError("could not register the RotatedNMS creator at load time");
      }
    } catch (...) {  // never throw out of a static initializer
    }
  }
};

LoadTimeRegistration gLoadTimeRegistration;

}  // namespace
}  // namespace trt
}  // namespace rdet

extern "C" TENSORRTAPI void setLoggerFinder(nvinfer1::ILoggerFinder* finder) {
  std::lock_guard<std::mutex> lock(rdet::trt::gLoggerMutex);
  rdet::trt::gLoggerFinder = finder;
}

extern "C" TENSORRTAPI nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
  {
    std::lock_guard<std::mutex> lock(rdet::trt::gRegistryMutex);
    if (rdet::trt::gLoadTimeRegistry != nullptr) {  // the caller (loadLibrary) registers it from here on
      rdet::trt::gLoadTimeRegistry->deregisterCreator(rdet::trt::theCreator());
      rdet::trt::gLoadTimeRegistry = nullptr;
    }
  }
  static nvinfer1::IPluginCreatorInterface* const kCreators[] = {&rdet::trt::theCreator()};
  nbCreators = 1;
  return kCreators;
}
