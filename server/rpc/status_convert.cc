#include "server/rpc/status_convert.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace rawfeat {
namespace {

class StatusInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit StatusInterceptor(std::string method) : method_(std::move(method)) {}

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      if (status.error_code() == grpc::StatusCode::INTERNAL &&
          status.error_message().empty()) {
        // Our handlers never return an empty message: this is gRPC's
        // failure to parse the request.
        methods->ModifySendStatus(grpc::Status(
            grpc::StatusCode::INVALID_ARGUMENT,
            absl::StrCat(method_,
                         ": the request does not parse (malformed bytes, or "
                         "a string field that is not valid UTF-8)")));
      } else if (status.error_message().size() > kMaxStatusMessageBytes) {
        methods->ModifySendStatus(BoundedStatus(status));
      }
    }
    methods->Proceed();
  }

 private:
  const std::string method_;
};

class StatusInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    const absl::string_view method = info->method();
    // Only the methods gRPC parses for us; the raw ones parse themselves
    // and convert through ToGrpcStatus.
    for (const char* sync :
         {"/ApplyDefinitions", "/ListDefinitions", "/Ingest", "/GetStatus"}) {
      if (absl::EndsWith(method, sync)) {
        return new StatusInterceptor(
            std::string(method.substr(method.rfind('/') + 1)));
      }
    }
    return nullptr;
  }
};

}  // namespace

grpc::Status BoundedStatus(const grpc::Status& status) {
  const std::string& message = status.error_message();
  if (message.size() <= kMaxStatusMessageBytes) return status;
  size_t cut = kMaxStatusMessageBytes - 64;
  while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xc0) == 0x80) {
    --cut;
  }
  return grpc::Status(
      status.error_code(),
      absl::StrCat(absl::string_view(message).substr(0, cut),
                   " ...(message cut: ", message.size(), " bytes)"),
      status.error_details());
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl and gRPC share the canonical code numbering.
  return BoundedStatus(
      grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                   std::string(status.message())));
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
NewStatusInterceptorFactory() {
  return std::make_unique<StatusInterceptorFactory>();
}

}  // namespace rawfeat
