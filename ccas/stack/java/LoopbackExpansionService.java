package ccas.stack;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.Arrays;
import org.apache.beam.runners.fnexecution.artifact.ArtifactRetrievalService;
import org.apache.beam.sdk.expansion.service.ExpansionService;
import org.apache.beam.sdk.expansion.service.ExpansionServiceOptions;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.vendor.grpc.v1p69p0.io.grpc.Server;
import org.apache.beam.vendor.grpc.v1p69p0.io.grpc.netty.NettyServerBuilder;

/**
 * Beam's expansion service bound to the loopback address only.
 *
 * <p>ExpansionService.main builds its server with ServerBuilder.forPort(port), which listens on every interface, and the
 * service runs any Java transform a client names. This launcher serves the same two services (expansion and artifact
 * retrieval) with the same arguments, on 127.0.0.1.
 *
 * <p>Usage: LoopbackExpansionService PORT [expansion service options...]
 */
public final class LoopbackExpansionService {
  private LoopbackExpansionService() {}

  public static void main(String[] args) throws Exception {
    if (args.length < 1) {
      System.err.println("usage: LoopbackExpansionService PORT [options...]");
      System.exit(2);
    }
    int port = Integer.parseInt(args[0]);
    PipelineOptionsFactory.register(ExpansionServiceOptions.class);
    PipelineOptions options =
        PipelineOptionsFactory.fromArgs(Arrays.copyOfRange(args, 1, args.length)).create();
    InetSocketAddress address = new InetSocketAddress(InetAddress.getLoopbackAddress(), port);
    ExpansionService service = new ExpansionService(options, "127.0.0.1:" + port);
    Server server =
        NettyServerBuilder.forAddress(address)
            .addService(service)
            .addService(new ArtifactRetrievalService())
            .build();
    server.start();
    System.out.println("Expansion service listening on " + address);
    Runtime.getRuntime().addShutdownHook(new Thread(server::shutdownNow));
    server.awaitTermination();
  }
}
