// Catches a render error in a plugin page or widget so the rest of the shell keeps working.
import * as React from "react";

interface Props {
  /** What failed, for the message ("The page of AI Chatbot"). */
  label: string;
  /** Render nothing on error (widgets), instead of an alert with a retry button (pages). */
  quiet?: boolean;
  children: React.ReactNode;
}

interface State {
  error: Error | null;
}

export class ErrorBoundary extends React.Component<Props, State> {
  state: State = { error: null };

  static getDerivedStateFromError(error: unknown): State {
    return { error: error instanceof Error ? error : new Error(String(error)) };
  }

  componentDidCatch(error: unknown, info: React.ErrorInfo): void {
    console.error(`plugdock: ${this.props.label} failed`, error, info.componentStack);
  }

  render() {
    const { error } = this.state;
    if (!error) return this.props.children;
    if (this.props.quiet) return null;
    return (
      <div className="plugdock notice notice-error plugin-error" role="alert">
        <h2>{this.props.label} stopped working</h2>
        <p>
          The plugin raised an error: <code>{error.message || error.name}</code>. The rest of the panel
          still works.
        </p>
        <button type="button" className="button" onClick={() => this.setState({ error: null })}>
          Try again
        </button>
      </div>
    );
  }
}
